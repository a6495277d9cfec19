package amqprpc

import (
	"fmt"
	"time"
)

// A session whose requests vanish. After a quorum queue's leader dies,
// RabbitMQ 3.10 can route every request a client publishes on a channel
// opened just before the new leader was known to the dead one, for good: no
// error, no return, no reply, and the connection stays up
// (docs/CLUSTER.md). All the client sees is its calls timing out while the
// queue has consumers, which go on serving other clients: requests of
// theirs may be waiting, ours never are. A server too slow for every call
// looks the same once, so the codec reopens its session only when it sees
// that twice, the second time for a call published after the first
// sighting, with no reply at all (late ones included) since the first, and
// no more than once per healEvery. A server that answers none of this
// client's calls within twice the call timeout (hung, or hopelessly behind)
// can still be taken for such a session: its session is reopened once per
// healEvery, which fails only calls that would time out anyway. Reopening
// fails the calls in flight on the session (ErrConnectionLost), as a lost
// connection does.

// healEvery bounds how often the codec reopens a session on its own.
const healEvery = 30 * time.Second

// dropWatch is what the deadline goroutine remembers of sessions that
// look as if they drop requests. It is owned by that goroutine.
type dropWatch struct {
	round, replies uint64    // c.expiries and c.repliesSeen as of the round being looked at
	since          uint64    // c.expiries at the first sighting; 0: none
	sinceReplies   uint64    // c.repliesSeen at the first sighting
	healed         time.Time // when the codec last reopened a session itself
}

// suspect returns, of the calls that just timed out, the one published
// last among those sent on a session still up with no reply at all since,
// or nil; none forgets any earlier sighting. c.mu must be held.
func (w *dropWatch) suspect(c *clientCodec, expired []*call) *call {
	w.round, w.replies = c.expiries, c.repliesSeen
	var latest *call
	for _, cl := range expired {
		if (cl.state == sent || cl.state == unconfirmed) && cl.gen > c.lostGen && cl.repliesAtSend == c.repliesSeen &&
			(latest == nil || cl.expiriesAtSend > latest.expiriesAtSend) {
			latest = cl
		}
	}
	if latest == nil {
		w.since = 0
	}
	return latest
}

// heal reopens suspect's session if the queue, as last seen, has consumers,
// and this is the second sighting.
func (d *deadlines) heal(suspect *call) {
	w := &d.dropping
	st, err := d.inspect()
	switch {
	case err != nil:
		return // no answer says nothing either way (a new leader settling in, say)
	case !st.Exists || st.Consumers == 0:
		w.since = 0 // a reason the calls time out that is not the session
		return
	case w.since == 0 || w.replies != w.sinceReplies:
		w.since, w.sinceReplies = w.round, w.replies // a first sighting
		return
	case suspect.expiriesAtSend < w.since:
		return // published before the first sighting: the same symptom again
	case !w.healed.IsZero() && time.Since(w.healed) < healEvery:
		return
	}
	w.since, w.healed = 0, time.Now()
	d.c.transport.Reopen(suspect.gen, fmt.Errorf(
		"%w: the client reopened its connection, as its calls to queue %q got no reply at all while the queue had %s: the broker was dropping its requests",
		ErrConnectionLost, d.c.queue, count(st.Consumers, "consumer")))
}
