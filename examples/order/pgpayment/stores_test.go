package pgpayment_test

// What the order example needs besides the broker: PostgreSQL for
// Payment and Redis for payment's reply store, each failing the test
// under CI when missing (make test starts both).

import (
	"cmp"
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// postgresURL is the PostgreSQL the tests use: POSTGRES_URL, or the local
// one with trust authentication.
func postgresURL() string {
	return cmp.Or(os.Getenv("POSTGRES_URL"), "postgres://postgres@127.0.0.1:5432/test")
}

// redisAddr is the Redis the tests use: REDIS_ADDR, or the local one.
func redisAddr() string { return cmp.Or(os.Getenv("REDIS_ADDR"), "127.0.0.1:6379") }

// testSchema returns a connection pool to the test PostgreSQL and a schema
// name unique to this test, whose schema is dropped when the test ends.
func testSchema(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	db, err := pgxpool.New(ctx, postgresURL())
	if err == nil {
		err = db.Ping(ctx)
	}
	if err != nil {
		brokertest.Missing(t, "PostgreSQL at "+postgresURL()+" does not answer: "+err.Error(), "make test starts one (scripts/ensure-postgres.sh)")
	}
	schema := "order_test_" + strings.ToLower(rand.Text()[:10])
	t.Cleanup(func() {
		if _, err := db.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
		db.Close()
	})
	return db, schema
}

// testRedis checks that the test Redis answers.
func testRedis(t *testing.T) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		brokertest.Missing(t, "Redis at "+redisAddr()+" does not answer: "+err.Error(), "make test starts one (scripts/ensure-redis.sh)")
	}
}
