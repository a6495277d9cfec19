package amqprpc

import (
	"errors"
	"hash/maphash"
	"strings"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/transport"
)

// A request can poison the connection that answers it: RabbitMQ 3.10 closes
// the whole connection with 541 INTERNAL_ERROR when a reply is published to
// a direct reply-to name it cannot decode, a forged one
// (amq.rabbitmq.reply-to.<bad pid>) or, in a cluster, that of a client whose
// node has gone down (rabbitmq-server issue 6396). The request was never
// acknowledged, so the broker delivers it again, and the server would
// reconnect and crash forever. A client on a lost node leaves one such
// request behind per call it had in flight, all with its reply_to; and
// every crash sends the requests in flight beside them, innocent ones,
// back to the queue too.
//
// poisonGuard finds the culprits without guessing, by reply_to: the poison
// is the address, and every request to it is equally poisonous. After a
// crash, every reply_to that had a risky reply published on the crashed
// connection is suspect. A reply to a suspect reply_to is published alone,
// between two round trips to the broker (transport.Server.RespondAlone): if
// the connection survives, the reply_to is cleared; if the broker closes
// it, the reply_to is poison for good, and every request to it is rejected
// without running. No request to a reply_to that works is ever rejected,
// and a lost client costs each server about two crashes, however many
// requests it left behind.

// poisonMemory bounds what the guard remembers.
const (
	recentReplies = 256
	maxSuspects   = 4096
	maxPoisoned   = 1024
)

type poisonGuard struct {
	seed maphash.Seed

	mu       sync.Mutex            // guards recent, next, suspects and poisoned
	recent   [recentReplies]uint64 // reply_to of risky replies published since the last session ended
	next     int
	suspects map[uint64]bool // reply_to present at a crash, to be answered alone
	poisoned map[uint64]bool // reply_to a reply to which closed the connection
}

func newPoisonGuard() *poisonGuard {
	return &poisonGuard{seed: maphash.MakeSeed(), suspects: make(map[uint64]bool), poisoned: make(map[uint64]bool)}
}

// risky reports whether a reply to replyTo can crash the connection.
func risky(replyTo string) bool {
	return strings.HasPrefix(replyTo, transport.DirectReplyTo+".")
}

// address names a delivery's reply_to in the guard's memory.
func (g *poisonGuard) address(d *amqp.Delivery) uint64 {
	return maphash.String(g.seed, d.ReplyTo)
}

// replied records a reply about to be published to a risky address.
func (g *poisonGuard) replied(d *amqp.Delivery) {
	a := g.address(d)
	g.mu.Lock()
	g.recent[g.next] = a
	g.next = (g.next + 1) % recentReplies
	g.mu.Unlock()
}

// crashed is told that a session ended with err. If it was the broker's
// internal error, every reply_to with a risky reply published since the
// last session ended is suspect.
func (g *poisonGuard) crashed(err error) {
	var e *amqp.Error
	crash := errors.As(err, &e) && e.Code == amqp.InternalError
	g.mu.Lock()
	defer g.mu.Unlock()
	if crash && len(g.suspects) > maxSuspects {
		clear(g.suspects)
	}
	for i, a := range g.recent {
		if crash && a != 0 {
			g.suspects[a] = true
		}
		g.recent[i] = 0
	}
}

// suspect reports whether a reply to d's reply_to must be published alone.
func (g *poisonGuard) suspect(d *amqp.Delivery) bool {
	if !risky(d.ReplyTo) {
		return false
	}
	a := g.address(d)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.suspects[a]
}

// proven records the outcome of a reply published alone to a suspect
// reply_to: it closed the connection, and the reply_to is poison, or it did
// not, and the reply_to is cleared.
func (g *poisonGuard) proven(d *amqp.Delivery, closedIt bool) {
	a := g.address(d)
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.suspects, a)
	if closedIt {
		if len(g.poisoned) >= maxPoisoned {
			clear(g.poisoned)
		}
		g.poisoned[a] = true
	}
}

// poisonous reports whether a delivery's reply_to has been proven to close
// the connection.
func (g *poisonGuard) poisonous(d *amqp.Delivery) bool {
	if !risky(d.ReplyTo) {
		return false
	}
	a := g.address(d)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.poisoned[a]
}
