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
// a forged direct reply-to name (amq.rabbitmq.reply-to.<bad pid>). The
// request was never acknowledged, so the broker delivers it again, and the
// server would reconnect and crash forever. poisonGuard remembers which
// requests were answered on connections that died that way and, when one of
// them comes back for the second time, rejects it without running it.

// poisonStrikes is how many connection crashes a request may be present at
// before it is rejected. One is not enough: requests answered in the same
// instant as the poison die with it and deserve another try.
const poisonStrikes = 2

// poisonMemory bounds what the guard remembers.
const (
	recentReplies = 256
	maxSuspects   = 4096
)

type poisonGuard struct {
	seed maphash.Seed

	mu       sync.Mutex            // guards recent, next and suspects
	recent   [recentReplies]uint64 // identities of recent risky replies
	next     int
	suspects map[uint64]int // identity -> crashes it was present at
}

func newPoisonGuard() *poisonGuard {
	return &poisonGuard{seed: maphash.MakeSeed(), suspects: make(map[uint64]int)}
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

// crashed is told that a session ended with err; if it was the broker's
// internal error, every recent risky reply gets a strike.
func (g *poisonGuard) crashed(err error) {
	var e *amqp.Error
	if !errors.As(err, &e) || e.Code != amqp.InternalError {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.suspects) > maxSuspects {
		clear(g.suspects)
	}
	for i, id := range g.recent {
		if id != 0 {
			g.suspects[id]++
			g.recent[i] = 0
		}
	}
}

// poisonous reports whether a delivery has been present at enough crashes.
func (g *poisonGuard) poisonous(d *amqp.Delivery) bool {
	if !d.Redelivered || !risky(d.ReplyTo) {
		return false
	}
	id := g.identity(d)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.suspects[id] < poisonStrikes {
		return false
	}
	delete(g.suspects, id)
	return true
}
