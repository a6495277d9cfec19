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
// poisonGuard finds the culprits without guessing. After a crash, every
// request whose risky reply was published on the crashed connection is a
// suspect. A suspect that comes back is answered alone, between two round
// trips to the broker (transport.Server.RespondAlone): if the connection
// survives, the request is cleared; if the reply closes it, its reply_to is
// poison for good, and every request to it, that one included, is rejected
// without running. No innocent request is ever rejected, and one lost
// client costs about two crashes, however many requests it left.

// poisonMemory bounds what the guard remembers.
const (
	recentReplies = 256
	maxSuspects   = 4096
	maxPoisoned   = 1024
)

type poisonGuard struct {
	seed maphash.Seed

	mu       sync.Mutex            // guards recent, next, suspects and poisoned
	recent   [recentReplies]uint64 // risky replies published since the last session ended
	next     int
	suspects map[uint64]bool // requests present at a crash, to be answered alone
	poisoned map[string]bool // reply_to names a reply to which closed the connection
}

func newPoisonGuard() *poisonGuard {
	return &poisonGuard{seed: maphash.MakeSeed(), suspects: make(map[uint64]bool), poisoned: make(map[string]bool)}
}

// risky reports whether a reply to replyTo can crash the connection.
func risky(replyTo string) bool {
	return strings.HasPrefix(replyTo, transport.DirectReplyTo+".")
}

// identity names a request across its deliveries.
func (g *poisonGuard) identity(d *amqp.Delivery) uint64 {
	var h maphash.Hash
	h.SetSeed(g.seed)
	h.WriteString(d.MessageId)
	h.WriteByte(0)
	h.WriteString(d.ReplyTo)
	h.WriteByte(0)
	h.WriteString(d.CorrelationId)
	return h.Sum64()
}

// replied records a reply about to be published to a risky address.
func (g *poisonGuard) replied(d *amqp.Delivery) {
	id := g.identity(d)
	g.mu.Lock()
	g.recent[g.next] = id
	g.next = (g.next + 1) % recentReplies
	g.mu.Unlock()
}

// crashed is told that a session ended with err. If it was the broker's
// internal error, every risky reply published since the last session ended
// makes its request a suspect.
func (g *poisonGuard) crashed(err error) {
	var e *amqp.Error
	crash := errors.As(err, &e) && e.Code == amqp.InternalError
	g.mu.Lock()
	defer g.mu.Unlock()
	if crash && len(g.suspects) > maxSuspects {
		clear(g.suspects)
	}
	for i, id := range g.recent {
		if crash && id != 0 {
			g.suspects[id] = true
		}
		g.recent[i] = 0
	}
}

// suspect reports whether a delivery must be answered alone: it was
// present at a crash and has not been cleared since.
func (g *poisonGuard) suspect(d *amqp.Delivery) bool {
	if !d.Redelivered || !risky(d.ReplyTo) {
		return false
	}
	id := g.identity(d)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.suspects[id]
}

// proven records the outcome of answering a suspect alone: its reply closed
// the connection, and its reply_to is poison, or it did not, and it is
// cleared.
func (g *poisonGuard) proven(d *amqp.Delivery, closedIt bool) {
	id := g.identity(d)
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.suspects, id)
	if closedIt {
		if len(g.poisoned) >= maxPoisoned {
			clear(g.poisoned)
		}
		g.poisoned[d.ReplyTo] = true
	}
}

// poisonous reports whether a delivery's reply_to has been proven to close
// the connection.
func (g *poisonGuard) poisonous(d *amqp.Delivery) bool {
	if !risky(d.ReplyTo) {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.poisoned[d.ReplyTo]
}
