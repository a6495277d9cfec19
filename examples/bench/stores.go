package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/redisstore"
)

// replyTTL is how long the reply stores of the bench keep a reply.
const replyTTL = time.Minute

// storeStart serves and calls Service as amqpStart does with the defaults,
// the server keeping its replies in the store newStore returns.
func storeStart(newStore func() (amqprpc.ReplyStore, func(), error)) func(string, string) (caller, func(), error) {
	return func(url, queue string) (caller, func(), error) {
		store, closeStore, err := newStore()
		if err != nil {
			return nil, nil, err
		}
		c, stop, err := amqpStartServer(codec.Gob, false, []amqprpc.ServerOption{amqprpc.WithReplyStore(store, replyTTL)})(url, queue)
		if err != nil {
			closeStore()
			return nil, nil, err
		}
		return c, func() { stop(); closeStore() }, nil
	}
}

// memoryStore is a MemoryStore of the default size.
func memoryStore() (amqprpc.ReplyStore, func(), error) {
	return amqprpc.NewMemoryStore(0), func() {}, nil
}

// redisStore is a Redis store on REDIS_ADDR, or 127.0.0.1:6379 (make bench
// starts one there).
func redisStore() (amqprpc.ReplyStore, func(), error) {
	addr := cmp.Or(os.Getenv("REDIS_ADDR"), "127.0.0.1:6379")
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		rdb.Close()
		return nil, nil, fmt.Errorf("bench: Redis at %s: %w (make bench starts one: scripts/ensure-redis.sh)", addr, err)
	}
	return redisstore.New(rdb, redisstore.WithKeyPrefix("amqprpc-bench:")), func() { rdb.Close() }, nil
}
