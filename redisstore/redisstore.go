// Package redisstore is an [amqprpc.ReplyStore] on Redis, which every
// instance of a service shares: a request the broker delivers again to any
// of them is answered with the reply already sent, and a request one
// instance runs is not run by another at the same time.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	store := redisstore.New(rdb)
//	err := amqprpc.Serve(ctx, nil, url, "payment", amqprpc.WithReplyStore(store, time.Minute))
//
// It is its own module, so that the amqprpc library does not require
// go-redis. Each request is one Redis hash under the key prefix, the
// service queue and the request's message_id, with an expiry: the claim's
// lease, then the reply's time to live. Every operation is one Lua script,
// so one round trip, and atomic.
package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/amqprpc/amqprpc"
)

// DefaultKeyPrefix starts the Redis key of every entry unless
// [WithKeyPrefix] says otherwise.
const DefaultKeyPrefix = "amqprpc:reply:"

// Store is an [amqprpc.ReplyStore] on Redis. It is safe for concurrent use.
type Store struct {
	rdb    redis.Scripter
	prefix string
}

// Option configures a [Store].
type Option func(*Store)

// WithKeyPrefix sets the prefix of the Store's Redis keys (default
// [DefaultKeyPrefix]).
func WithKeyPrefix(prefix string) Option { return func(s *Store) { s.prefix = prefix } }

// New returns a Store that keeps its entries in rdb: a *redis.Client, a
// *redis.ClusterClient, a *redis.Ring or anything else that runs scripts.
// The Store does not close rdb.
func New(rdb redis.Scripter, opts ...Option) *Store {
	s := &Store{rdb: rdb, prefix: DefaultKeyPrefix}
	for _, o := range opts {
		o(s)
	}
	return s
}

// The hash of an entry has the field o (the claim's owner), and once
// answered d ("1"), ct (content type), b (body) and e (error text).
var (
	// claimScript: KEYS[1] the entry, ARGV[1] the owner, ARGV[2] the lease
	// in ms. It returns {1, ct, b, e} for a reply, {2, owner} for a claim
	// held by another, {0} when the caller holds the claim now.
	claimScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'd', 'o', 'ct', 'b', 'e')
if v[1] then return {1, v[3], v[4], v[5]} end
if v[2] and v[2] ~= ARGV[1] then return {2, v[2]} end
redis.call('HSET', KEYS[1], 'o', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {0}
`)
	// putScript: KEYS[1] the entry, ARGV: ct, b, e, ttl in ms.
	putScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'd', '1', 'ct', ARGV[1], 'b', ARGV[2], 'e', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`)
	// releaseScript: KEYS[1] the entry, ARGV[1] the owner.
	releaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'd') then return 0 end
if redis.call('HGET', KEYS[1], 'o') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)
)

// Claim implements [amqprpc.ReplyStore].
func (s *Store) Claim(ctx context.Context, key, owner string, lease time.Duration) (amqprpc.Claim, error) {
	v, err := claimScript.Run(ctx, s.rdb, []string{s.prefix + key}, owner, millis(lease)).Slice()
	if err != nil {
		return amqprpc.Claim{}, fmt.Errorf("redisstore: claim %q: %w", key, err)
	}
	switch code, _ := v[0].(int64); {
	case code == 1 && len(v) == 4:
		return amqprpc.Claim{Reply: &amqprpc.StoredReply{
			ContentType: str(v[1]),
			Body:        []byte(str(v[2])),
			Error:       str(v[3]),
		}}, nil
	case code == 2 && len(v) == 2:
		return amqprpc.Claim{HeldBy: str(v[1])}, nil
	case code == 0:
		return amqprpc.Claim{}, nil
	}
	return amqprpc.Claim{}, fmt.Errorf("redisstore: claim %q: unexpected answer %v", key, v)
}

// Put implements [amqprpc.ReplyStore].
func (s *Store) Put(ctx context.Context, key string, r amqprpc.StoredReply, ttl time.Duration) error {
	err := putScript.Run(ctx, s.rdb, []string{s.prefix + key}, r.ContentType, r.Body, r.Error, millis(ttl)).Err()
	if err != nil {
		return fmt.Errorf("redisstore: put %q: %w", key, err)
	}
	return nil
}

// Release implements [amqprpc.ReplyStore].
func (s *Store) Release(ctx context.Context, key, owner string) error {
	if err := releaseScript.Run(ctx, s.rdb, []string{s.prefix + key}, owner).Err(); err != nil {
		return fmt.Errorf("redisstore: release %q: %w", key, err)
	}
	return nil
}

// millis is d in whole milliseconds, at least 1: Redis's unit of expiry.
func millis(d time.Duration) int64 { return max(1, d.Milliseconds()) }

// str reads a string a script returned; nil (a missing field) is "".
func str(v any) string {
	s, _ := v.(string)
	return s
}
