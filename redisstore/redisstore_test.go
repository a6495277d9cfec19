package redisstore_test

import (
	"cmp"
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/redisstore"
	"github.com/amqprpc/amqprpc/storetest"
)

// redisAddr is the Redis the tests use: REDIS_ADDR, or 127.0.0.1:6379.
func redisAddr() string { return cmp.Or(os.Getenv("REDIS_ADDR"), "127.0.0.1:6379") }

// client returns a client of the test Redis, closed when the test ends. It
// fails the test when Redis does not answer and CI is set, and skips it
// otherwise.
func client(t testing.TB) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and Redis at %s does not answer: %v (make test starts one: scripts/ensure-redis.sh)", redisAddr(), err)
		}
		t.Skipf("no Redis at %s (%v); set CI=1 to make this a failure", redisAddr(), err)
	}
	return rdb
}

// TestContract runs the reply store contract on Redis.
func TestContract(t *testing.T) {
	rdb := client(t)
	storetest.Run(t, func(*testing.T) amqprpc.ReplyStore { return redisstore.New(rdb) })
}

// TestKeyPrefix checks that entries live under the prefix, and expire.
func TestKeyPrefix(t *testing.T) {
	rdb := client(t)
	ctx := context.Background()
	s := redisstore.New(rdb, redisstore.WithKeyPrefix("amqprpc-test:"))
	key := "queue/" + t.Name()
	t.Cleanup(func() { rdb.Del(ctx, "amqprpc-test:"+key) })
	if err := s.Put(ctx, key, amqprpc.StoredReply{ContentType: "application/json", Body: []byte("1")}, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	ttl, err := rdb.PTTL(ctx, "amqprpc-test:"+key).Result()
	if err != nil || ttl <= 0 || ttl > 90*time.Second {
		t.Errorf("PTTL(%q) = %v, %v; want up to 90s", "amqprpc-test:"+key, ttl, err)
	}
	if n, _ := rdb.Exists(ctx, redisstore.DefaultKeyPrefix+key).Result(); n != 0 {
		t.Errorf("an entry under the default prefix exists; want it under the given one only")
	}
}
