package amqprpc

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// storedReplies is a server's use of its reply store (WithReplyStore):
// every request with a message_id is claimed before it runs, and its reply
// is stored before it is published. A request answered before is answered
// again from the store; one whose claim another server holds waits for that
// server's reply (awaitHolder). The claims of running requests are renewed
// (renew) so that a long method keeps its own.
type storedReplies struct {
	replyStoreConfig
	queue string
	id    string // this codec's, the first part of its owners
	runs  atomic.Uint64
	log   *slog.Logger

	mu     sync.Mutex             // guards held and closed
	held   map[*inbound]time.Time // claims of running requests, by when last claimed
	closed bool

	stop chan struct{}  // closed by close
	wg   sync.WaitGroup // renew, the awaitHolder and the storing goroutines
}

func newStoredReplies(cfg *replyStoreConfig, queue string, log *slog.Logger) *storedReplies {
	if cfg == nil {
		return nil
	}
	s := &storedReplies{
		replyStoreConfig: *cfg,
		queue:            queue,
		id:               rand.Text()[:16],
		log:              log,
		held:             make(map[*inbound]time.Time),
		stop:             make(chan struct{}),
	}
	s.wg.Add(1)
	go s.renew()
	return s
}

// claimFirst claims in before it runs and reports whether it may run now.
// A request answered before gets its stored reply; one another server is
// running waits for that server's reply on a goroutine of its own. While
// the store fails, requests run as they would without it.
func (c *serverCodec) claimFirst(in *inbound) bool {
	s := c.store
	if in.req.MessageId == "" {
		return true
	}
	in.key = replyKey(s.queue, in.req.MessageId)
	owner := s.id + "-" + strconv.FormatUint(s.runs.Add(1), 10)
	claim, err := s.claim(in.key, owner)
	switch {
	case err != nil:
		s.log.Warn("amqprpc: reply store: claim failed; running the request without a claim", "message_id", fmt.Sprintf("%.64s", in.req.MessageId), "err", err)
		return true
	case claim.Reply != nil:
		c.answerStored(in, claim.Reply)
		return false
	case claim.HeldBy != "":
		s.mu.Lock()
		closed := s.closed
		if !closed {
			s.wg.Add(1)
			go c.awaitHolder(in, claim.HeldBy)
		}
		s.mu.Unlock()
		if closed {
			c.putBack(in, errClaimHeld) // not under s.mu: it ends the request's hooks
		}
		return false
	}
	in.owner = owner
	s.mu.Lock()
	s.held[in] = time.Now()
	s.mu.Unlock()
	return true
}

// claim claims key for owner for the lease.
func (s *storedReplies) claim(key, owner string) (Claim, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	return s.store.Claim(ctx, key, owner, s.lease)
}

// answerStored sends r, the reply stored for in's message_id, to in's
// reply_to with in's correlation_id, without running in.
func (c *serverCodec) answerStored(in *inbound, r *StoredReply) {
	c.store.log.Info("amqprpc: answered a request again from the reply store, without running it",
		"method", fmt.Sprintf("%.64s", in.method), "message_id", fmt.Sprintf("%.64s", in.req.MessageId))
	in.stored = true
	msg := amqp.Publishing{CorrelationId: in.req.CorrelationId, ContentType: r.ContentType, Body: r.Body}
	if r.Error != "" {
		msg.Headers = amqp.Table{ErrorHeader: r.Error}
		msg.Body = nil
	}
	if !c.out.put(outbound{in: in, ready: &msg, errText: r.Error}) {
		c.putBack(in, failure(ErrClosed, "the server stopped before it could answer: the request is back in the queue"))
	}
}

// awaitHolder waits, up to the lease, for the server that holds in's claim
// to store its reply, and sends it. Past the lease (a live holder renews
// its claim; a dead one's has expired by then), or when the codec closes,
// in goes back to the queue, to be claimed again when it comes back.
func (c *serverCodec) awaitHolder(in *inbound, holder string) {
	s := c.store
	defer s.wg.Done()
	owner := s.id + "-" + strconv.FormatUint(s.runs.Add(1), 10)
	deadline := time.Now().Add(s.lease)
	pause := 10 * time.Millisecond
	for {
		t := time.NewTimer(pause)
		select {
		case <-s.stop:
			t.Stop()
			c.putBack(in, errClaimHeld)
			return
		case <-t.C:
		}
		claim, err := s.claim(in.key, owner)
		switch {
		case err == nil && claim.Reply != nil:
			c.answerStored(in, claim.Reply)
			return
		case err == nil && claim.HeldBy == "":
			// The holder let it go or died: the next delivery runs it.
			s.release(in.key, owner)
			c.putBack(in, errClaimHeld)
			return
		case time.Now().After(deadline):
			s.log.Info("amqprpc: reply store: another server still runs this request; it goes back to the queue",
				"message_id", fmt.Sprintf("%.64s", in.req.MessageId), "holder", holder, "err", err)
			c.putBack(in, errClaimHeld)
			return
		}
		pause = min(2*pause, s.lease/10)
	}
}

// release drops owner's claim on key.
func (s *storedReplies) release(key, owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := s.store.Release(ctx, key, owner); err != nil {
		s.log.Warn("amqprpc: reply store: release failed; the claim lasts its lease", "err", err)
	}
}

// released drops the claim of a request taken and not answered (it goes
// back to the queue: taken as the codec closed, or cut off by the shutdown
// grace period), so that its next delivery need not wait out the lease.
// Without a store, or a claim, it does nothing.
func (s *storedReplies) released(in *inbound) {
	if s == nil || in.owner == "" {
		return
	}
	s.unhold(in)
	s.release(in.key, in.owner)
}

// unhold stops renewing in's claim.
func (s *storedReplies) unhold(in *inbound) {
	s.mu.Lock()
	delete(s.held, in)
	s.mu.Unlock()
}

// storing runs f, storeReply, on a goroutine of its own, which close
// waits for. It is called under c.mu by WriteResponse, before the codec's
// shutdown calls close (it waits for nothing to run first).
func (s *storedReplies) storing(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// storeReply encodes o, a reply to a claimed request, stores it, and hands
// it to the outbox to publish: a reply is in the store before anyone can
// see it, so a delivery of the request after it was published, even one
// the broker makes because this server died before acknowledging, gets
// the same reply. It runs on a goroutine of its own per reply (net/rpc
// calls WriteResponse under a lock of its own, one reply at a time), which
// ends once the reply is queued.
func (c *serverCodec) storeReply(o outbound) {
	var buf []byte
	msg := c.encodeReply(&o, &buf)
	r := StoredReply{ContentType: msg.ContentType, Body: msg.Body}
	if e, ok := msg.Headers[ErrorHeader].(string); ok {
		r.Error = e
	}
	s := c.store
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	err := s.store.Put(ctx, o.in.key, r, s.ttl)
	cancel()
	s.unhold(o.in)
	if err != nil {
		s.log.Warn("amqprpc: reply store: reply not stored; a delivery of this request again would run it again",
			"method", fmt.Sprintf("%.64s", o.in.method), "err", err)
	}
	o.ready = &msg
	if !c.out.put(o) { // cannot happen: the codec's shutdown waits for this goroutine first
		c.putBack(o.in, failure(ErrClosed, "the server stopped before it could answer: the request is back in the queue"))
	}
}

// renew claims the running requests again every third of the lease, so
// that a method that runs longer than the lease keeps its claim.
func (s *storedReplies) renew() {
	defer s.wg.Done()
	tick := time.NewTicker(s.lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		var due []*inbound
		for in, at := range s.held {
			if time.Since(at) >= s.lease/3 {
				due = append(due, in)
			}
		}
		s.mu.Unlock()
		for _, in := range due {
			claim, err := s.claim(in.key, in.owner)
			s.mu.Lock()
			_, running := s.held[in]
			if running {
				s.held[in] = time.Now()
			}
			s.mu.Unlock()
			if running && err == nil && claim.HeldBy != "" {
				s.log.Warn("amqprpc: reply store: a running request lost its claim to another server",
					"message_id", fmt.Sprintf("%.64s", in.req.MessageId), "held_by", claim.HeldBy)
			}
		}
	}
}

// close stops renewing and waiting, the waiting requests going back to the
// queue, and waits for the goroutines, those storing replies included.
// Without a store it does nothing.
func (s *storedReplies) close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
}
