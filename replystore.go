package amqprpc

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ReplyStore keeps the replies a server publishes, by request, so that a
// request the broker delivers again (its server died, or lost its
// connection, after running it and before acknowledging it) is answered
// with the reply already sent instead of running again ([WithReplyStore]).
// It also holds claims, so that two servers never run one request at once:
// a server claims a request before running it and replaces its claim with
// the reply.
//
// A key names one request: the service queue, a slash and the request's
// message_id. An owner names one run of it on one server. A store shared
// by every instance of a service (Redis, a database table) covers all of
// them; [NewMemoryStore] covers one process. Its methods are called from
// many goroutines at once. The package storetest holds the tests every
// implementation must pass.
type ReplyStore interface {
	// Claim looks key up. When a reply is stored under key, it returns it.
	// When another owner holds a claim on key that has not expired, it
	// returns that owner. Otherwise it records owner's claim on key for
	// lease (taking over an expired claim, or renewing owner's own) and
	// returns the zero Claim: the caller may run the request. The check
	// and the record are one atomic step.
	Claim(ctx context.Context, key, owner string, lease time.Duration) (Claim, error)
	// Put stores reply under key for ttl, in place of any claim, whoever
	// holds it. It must not keep reply.Body, which the caller may reuse:
	// it copies it.
	Put(ctx context.Context, key string, reply StoredReply, ttl time.Duration) error
	// Release drops owner's claim on key, if owner still holds it. A
	// stored reply, or another owner's claim, stays.
	Release(ctx context.Context, key, owner string) error
}

// Claim is what [ReplyStore.Claim] found. The zero Claim means that the
// caller holds the claim.
type Claim struct {
	// Reply is the reply stored for the request, when it has been
	// answered.
	Reply *StoredReply
	// HeldBy is the owner of a live claim of someone else's, when the
	// request is being run elsewhere.
	HeldBy string
}

// StoredReply is a reply as it was published: its content type, its body,
// and the text of its x-rpc-error header ("" for a reply that is not an
// error, whose body then holds the result). A server sends it again to the
// reply_to of the new delivery, with the new delivery's correlation_id.
type StoredReply struct {
	ContentType string
	Body        []byte
	Error       string
}

// Timings of a server's use of its reply store.
const (
	// replyLease is how long a claim lasts unless renewed: how long the
	// requests of a server that died mid-run wait before another runs
	// them.
	replyLease = 10 * time.Second
	// storeTimeout bounds each call to the store; past it the server
	// carries on as if it had no store (at least once).
	storeTimeout = 5 * time.Second
)

// errClaimHeld ends, for the hooks, a request that went back to the queue
// because another server held its claim throughout the wait.
var errClaimHeld = errors.New("amqprpc: request returned to the queue: another server is running it")

// replyStoreConfig is what WithReplyStore sets.
type replyStoreConfig struct {
	store ReplyStore
	ttl   time.Duration
	lease time.Duration // replyLease; tests shorten it
}

// WithReplyStore makes a server answer a request it has answered before,
// by message_id, with the reply it sent then, without running the method
// again: the case of a request the broker delivers again because its server
// died or lost its connection between publishing the reply and
// acknowledging the request. Before running a request that has a
// message_id the server claims it in s; it stores the reply in s before
// publishing it, for ttl. A request another server is running (its claim
// is live) waits for that server's reply, up to the claim's lease (10 s);
// if none comes, it goes back to the queue for a later try. A server that
// died mid-run leaves a claim that expires after the lease; its request
// then runs again, as it would without a store. Long methods keep their
// claims alive. Requests without a message_id run as they would without a
// store, and so does every request while s fails (each failure is logged).
//
// ttl must be at least the longest call timeout of the service's callers,
// as a redelivery can come as long as a caller waits; it may not be less
// than [DefaultCallTimeout]. A nil s is an error. No store by default.
func WithReplyStore(s ReplyStore, ttl time.Duration) ServerOption {
	return server(func(o *serverOptions) {
		o.replyStore = &replyStoreConfig{store: s, ttl: ttl, lease: replyLease}
	})
}

// check validates a WithReplyStore.
func (c *replyStoreConfig) check() error {
	switch {
	case c == nil:
		return nil
	case c.store == nil:
		return errors.New("amqprpc: WithReplyStore(nil, ...): want a store")
	case c.ttl < DefaultCallTimeout:
		return fmt.Errorf("amqprpc: WithReplyStore(..., %v): want a ttl of at least the longest call timeout of the service's callers, and no less than %v",
			c.ttl, DefaultCallTimeout)
	}
	return nil
}

// replyKey is the store's key for a request to queue.
func replyKey(queue, messageID string) string { return queue + "/" + messageID }
