package amqprpc

import (
	"errors"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/transport"
)

// Requests held for a reconnect. A request that finds the client between
// connections is kept in its call and published by SessionReady once a
// session is up; with confirms on, a request the broker never confirmed
// before its session was lost is kept and published again the same way.
// Its deadline runs all the while.

// publishedLocked applies the outcome of one publish of cl's request msg
// (session gen, or err) as the same rule for a first publish and a
// republish. It reports whether to publish again at once, because a
// session came up during the attempt (readies moved) and its SessionReady
// may have missed cl, and the failure that ends the call, if any. c.mu must
// be held.
func (c *clientCodec) publishedLocked(cl *call, msg *amqp.Publishing, gen uint64, err error, readies uint64) (again bool, fail error) {
	switch {
	case err == nil:
		cl.gen = gen
		switch {
		case !c.confirms || cl.confirmed:
			cl.msg = nil
		case cl.msg == nil:
			cl.msg = keep(msg)
		}
		if gen <= c.lostGen {
			// The session was lost while the request went out on it.
			c.lostLocked(cl, c.lostErr)
			return cl.held() && c.readies != readies, nil
		}
	case errors.Is(err, transport.ErrNotConnected):
		if c.readies != readies {
			return true, nil
		}
		if cl.msg == nil {
			cl.msg = keep(msg) // SessionReady publishes it
		}
		cl.gen = 0
	default:
		return false, err
	}
	return false, nil
}

// SessionLost implements transport.ClientHandler: calls published on the
// lost session can no longer get a reply.
func (c *clientCodec) SessionLost(gen uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lostGen, c.lostErr = gen, err
	var lost []*call
	c.calls.each(func(cl *call) {
		if cl.gen != 0 && cl.gen <= gen {
			lost = append(lost, cl)
		}
	})
	for _, cl := range lost {
		c.lostLocked(cl, err)
	}
}

// lostLocked handles a call whose session is gone. With confirms on, a
// request the broker never confirmed was never reported sent: it is held to
// be published again. Any other call fails. c.mu must be held.
func (c *clientCodec) lostLocked(cl *call, err error) {
	if c.confirms && !cl.confirmed && cl.msg != nil {
		cl.gen = 0
		return
	}
	if err == nil {
		c.failLocked(cl, failure(ErrConnectionLost, "%s was sent on a connection that has since been lost", cl.method))
		return
	}
	c.failLocked(cl, lostFailure(err, cl.method))
}

// SessionReady implements transport.ClientHandler: it publishes the held
// requests, each with the time its call has left as its expiration.
func (c *clientCodec) SessionReady(uint64) {
	c.flushing.Lock() // one flush at a time, in session order
	defer c.flushing.Unlock()
	c.mu.Lock()
	c.readies++
	var held []*call
	c.calls.each(func(cl *call) {
		if cl.waiting() {
			held = append(held, cl)
		}
	})
	c.mu.Unlock()
	for _, cl := range held {
		c.republish(cl)
	}
}

// republish publishes one held request again.
func (c *clientCodec) republish(cl *call) {
	c.mu.Lock()
	msg := cl.msg
	if c.calls.get(cl.seq) != cl || msg == nil {
		c.mu.Unlock()
		return // answered, failed or published since
	}
	if !cl.expireAt.IsZero() {
		left := time.Until(cl.expireAt).Milliseconds()
		if left < 1 {
			c.mu.Unlock()
			return // its deadline, or Call's context, fails it
		}
		msg.Expiration = strconv.FormatInt(left, 10)
	}
	c.mu.Unlock()
	gen, err := c.t.Publish(c.queue, msg)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls.get(cl.seq) != cl {
		return
	}
	if _, fail := c.publishedLocked(cl, msg, gen, err, c.readies); fail != nil {
		c.failLocked(cl, asFailure(fail, ErrConnectionLost))
	}
}
