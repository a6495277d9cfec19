package amqprpc

import (
	"reflect"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A call's life in the client codec, from WriteRequest to the one response
// net/rpc reads for it.
//
// A pending call is in pendingCalls, and in one of the states below. Its
// request moves between them as sessions come and go:
//
//	held ──► publishing ──► sent ◄── unconfirmed
//	 ▲         │  │  │                ▲   │
//	 └─────────┘  │  └────────────────┘   │
//	  no session, │     published,        │ session lost
//	  never sent  │     confirms on       ▼ before the confirm
//	              └────────────────────► resend ──► publishing
//	                 no session, sent before
//
// A call ends in any state, and only once: whoever removes it from
// pendingCalls (its reply, a failure, its deadline, Call's context, Close)
// owns its response. Removal is the only way out, so a goroutine that let
// go of c.mu checks that the call is still pending before it goes on.
//
// What a failure can say follows from the state it ends in: a held call was
// never sent, so the method cannot have run ([ErrNotSent]); in any other
// state the request is on the wire, or may be, and the method may have run.
//
// Lock order: c.mu, then any of callArgs.mu, clientHooks.mu and the
// failures queue's lock, each held only for its own fields. The transport's
// locks are never taken under c.mu: Publish and InspectQueue are called
// without it, and so are the hooks' CallEnds.

// callState is where a pending call's request is.
type callState uint8

const (
	// held: kept until a session is up. Never published: the method
	// cannot have run.
	held callState = iota
	// publishing: a goroutine (WriteRequest, or a flush after a reconnect)
	// is publishing the request, which may already be on the wire.
	publishing
	// unconfirmed: published with confirms on, and not yet confirmed by
	// the broker; kept, to be published again should its session end
	// first.
	unconfirmed
	// sent: published, and confirmed with confirms on. Only its reply, a
	// failure or its deadline ends it.
	sent
	// resend: published on a session that ended before the broker
	// confirmed it; kept to be published again. It may have run.
	resend
)

func (s callState) String() string {
	switch s {
	case held:
		return "held"
	case publishing:
		return "publishing"
	case unconfirmed:
		return "unconfirmed"
	case sent:
		return "sent"
	case resend:
		return "resend"
	}
	return "callState(?)"
}

// canMove reports whether a call may go from s to next: the arrows above.
func (s callState) canMove(next callState) bool {
	switch s {
	case held, resend:
		return next == publishing
	case publishing:
		return next == held || next == resend || next == unconfirmed || next == sent
	case unconfirmed:
		return next == sent || next == resend
	}
	return false
}

// call is a pending call: a request the client has sent, or holds until it
// can, and whose response net/rpc awaits. Its fields are guarded by c.mu
// while it is pending; once removed, the goroutine that removed it owns it.
type call struct {
	seq    uint64
	method string
	state  callState
	// gen is the session that carried the request last; 0 if none has.
	gen uint64
	// msg is the request, kept while it may have to be published (again):
	// held, resend and unconfirmed, and while publishing those.
	msg *amqp.Publishing
	// confirmedEarly: the broker's ack came while WriteRequest was still
	// publishing, before the call was marked unconfirmed.
	confirmedEarly bool
	// replyType is the type of Call's reply variable, which its reply must
	// fit; nil for client.Call and client.Go.
	replyType reflect.Type
	deadline  time.Time // zero when the call never times out
	// expireAt is when the request expires in the queue: deadline, or the
	// deadline of Call's context when that is earlier.
	expireAt time.Time
	// repliesAtSend and expiriesAtSend are the codec's counts of replies
	// and of timeout rounds when the request was last published: a
	// timeout with no reply since then is a sign of a session whose
	// requests vanish (heal.go).
	repliesAtSend, expiriesAtSend uint64
	prev, next                    *call // deadline order
}

// move makes the call's state next and reports true, if the arrows allow
// it; otherwise it leaves the state and reports false.
func (cl *call) move(next callState) bool {
	if !cl.state.canMove(next) {
		return false
	}
	cl.state = next
	return true
}
