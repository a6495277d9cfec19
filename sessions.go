package amqprpc

import (
	"errors"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/transport"
)

// What the client codec does as the transport's sessions come and go. A
// request that finds the client between connections is held in its call
// and published by SessionReady once a session is up; with confirms on, a
// request the broker never confirmed before its session was lost is kept
// and published again the same way. Its deadline runs all the while.

// publishedLocked applies the outcome of one publish of cl's request msg
// (session gen, or err), the same rule for a first publish and a republish.
// It reports whether to publish again at once, because a session came up
// during the attempt (sessionsUp moved) and its SessionReady may have
// missed cl, and the failure that ends the call, if any. cl is publishing;
// c.mu must be held.
func (c *clientCodec) publishedLocked(cl *call, msg *amqp.Publishing, gen uint64, err error, sessionsUp uint64) (again bool, fail error) {
	switch {
	case err == nil:
		cl.gen = gen
		cl.repliesAtSend, cl.expiriesAtSend = c.repliesSeen, c.expiries
		if c.confirms && !cl.confirmedEarly {
			cl.move(unconfirmed)
			if cl.msg == nil {
				cl.msg = keep(msg)
			}
		} else {
			cl.move(sent)
			cl.msg = nil
		}
		cl.confirmedEarly = false
		if gen <= c.lostGen {
			// The session was lost while the request went out on it.
			c.lostLocked(cl, c.lostErr)
			return c.again(cl, sessionsUp), nil
		}
	case errors.Is(err, transport.ErrNotConnected):
		if c.sessionsUp != sessionsUp {
			return true, nil
		}
		if cl.msg == nil {
			cl.msg = keep(msg) // SessionReady publishes it
		}
		if cl.gen == 0 {
			cl.move(held)
		} else {
			cl.move(resend)
		}
	default:
		return false, err
	}
	return false, nil
}

// again reports whether cl, kept to be sent again by a loss that came
// while it was being published, must be published at once because a
// session came up meanwhile, and makes it publishing if so. c.mu must be
// held.
func (c *clientCodec) again(cl *call, sessionsUp uint64) bool {
	return cl.state == resend && c.sessionsUp != sessionsUp && cl.move(publishing)
}

// SessionLost implements transport.ClientHandler: calls published on the
// lost session can no longer get a reply.
func (c *clientCodec) SessionLost(gen uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lostGen, c.lostErr = gen, err
	var lost []*call
	c.calls.each(func(cl *call) {
		if (cl.state == sent || cl.state == unconfirmed) && cl.gen <= gen {
			lost = append(lost, cl)
		}
	})
	for _, cl := range lost {
		c.lostLocked(cl, err)
	}
}

// lostLocked handles a call whose session is gone. A request the broker
// never confirmed was never reported sent: it is kept to be published
// again. A sent one fails. c.mu must be held.
func (c *clientCodec) lostLocked(cl *call, err error) {
	if cl.move(resend) {
		return
	}
	if err == nil {
		c.failLocked(cl, failure(ErrConnectionLost, "%s was sent on a connection that has since been lost", methodName(cl.method)))
		return
	}
	c.failLocked(cl, lostFailure(err, cl))
}

// SessionReady implements transport.ClientHandler: it publishes the held
// requests, each with the time its call has left as its expiration.
func (c *clientCodec) SessionReady(uint64) {
	c.flushMu.Lock() // one flush at a time, in session order
	defer c.flushMu.Unlock()
	c.mu.Lock()
	c.sessionsUp++
	var kept []*call
	c.calls.each(func(cl *call) {
		if cl.state == held || cl.state == resend {
			kept = append(kept, cl)
		}
	})
	c.mu.Unlock()
	for _, cl := range kept {
		c.republish(cl)
	}
}

// republish publishes one kept request again.
func (c *clientCodec) republish(cl *call) {
	c.mu.Lock()
	if c.calls.get(cl.seq) != cl || (cl.state != held && cl.state != resend) {
		c.mu.Unlock()
		return // answered, failed or published since
	}
	msg := cl.msg
	if !cl.expireAt.IsZero() {
		left := time.Until(cl.expireAt)
		if left < time.Millisecond {
			c.mu.Unlock()
			return // its deadline, or Call's context, fails it
		}
		msg.Expiration = expiration(left)
	}
	cl.move(publishing)
	c.mu.Unlock()
	gen, err := c.transport.Publish(c.queue, msg)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls.get(cl.seq) != cl {
		return
	}
	// No session comes up meanwhile: the next SessionReady waits for this
	// one's flush.
	if _, fail := c.publishedLocked(cl, msg, gen, err, c.sessionsUp); fail != nil {
		c.failLocked(cl, publishFailure(cl, fail))
	}
}

// publishFailure is the failure of a call whose publish failed: a request
// AMQP cannot carry was never sent; after any other error it may have
// been.
func publishFailure(cl *call, err error) *callError {
	if !errors.Is(err, ErrUnencodable) {
		return asFailure(err, ErrConnectionLost)
	}
	why := strings.TrimPrefix(err.Error(), ErrUnencodable.Error()+": ")
	return notSentFailure(ErrUnencodable, "%s: %s", truncateUTF8(methodName(cl.method), 64), why)
}
