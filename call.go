package amqprpc

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"reflect"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Call calls serviceMethod through client with args and waits for its
// reply, as client.Call does, within ctx:
//
//   - It returns when ctx ends, with an error that matches ctx.Err() under
//     errors.Is. The client forgets the call at once: it holds no
//     [WithMaxInFlight] slot and waits for no reply. A request already
//     published may still run on the server.
//   - The request carries ctx's deadline: its expiration is the smaller of
//     the call timeout and the time left (counted again when a request held
//     for a reconnect is published), and the server puts the deadline
//     ([DeadlineHeader]) in the context the service gets from
//     [Delivery.Context].
//   - The client's hooks get ctx ([WithClientHook]), so a trace span in ctx
//     continues on the server when tracing is on (otelamqprpc).
//
// client must come from [Dial], or from rpc.NewClientWithCodec with a codec
// of [NewClientCodec] itself, not wrapped: Call fails for any other client
// without sending anything. A service that embeds [Delivery] in its
// argument type passes args.Context() to the calls it makes itself.
func Call(ctx context.Context, client *rpc.Client, serviceMethod string, args, reply any) error {
	if client == nil || !usesClientCodec(client) {
		return errNotOurClient
	}
	if err := ctx.Err(); err != nil {
		return notSent(contextError(serviceMethod, err))
	}
	begun := time.Now()
	a := &callArgs{ctx: ctx, args: args, reply: reply}
	call := client.Go(serviceMethod, a, reply, make(chan *rpc.Call, 1))
	if c := a.lackedSlot(); c != nil {
		// WriteRequest found every WithMaxInFlight slot taken and sent
		// nothing: wait for one here, where no lock of net/rpc's is held,
		// then go again with the slot in hand.
		if err := c.waitForSlot(ctx, serviceMethod, begun); err != nil {
			return err
		}
		a = &callArgs{ctx: ctx, args: args, reply: reply, slotTaken: true}
		call = client.Go(serviceMethod, a, reply, make(chan *rpc.Call, 1))
		if !a.written() {
			c.release(1) // net/rpc shut down before WriteRequest
		}
	}
	select {
	case <-call.Done:
		return call.Error
	case <-ctx.Done():
	}
	if err := a.abandon(serviceMethod); err != nil {
		return err
	}
	// The call's response is already on its way to net/rpc, which may write
	// reply: wait for it, so that nothing touches reply after Call returns.
	<-call.Done
	return call.Error
}

// errNotOurClient is Call's error for a client whose codec is not ours.
var errNotOurClient = errors.New("amqprpc: Call needs a client made by amqprpc.Dial or with amqprpc.NewClientCodec")

// contextError is a call's error when its context ended.
func contextError(method string, err error) error {
	return fmt.Errorf("amqprpc: %s: %w", methodName(method), err)
}

// usesClientCodec reports whether client writes through this package's
// client codec. *rpc.Client does not export its codec: reflection reads the
// type held by its field codec, which net/rpc has had since Go 1. Should
// the field ever go, Call trusts the client, and callArgs' encoders make a
// foreign codec fail the call instead.
func usesClientCodec(client *rpc.Client) bool {
	f := reflect.ValueOf(client).Elem().FieldByName("codec")
	if !f.IsValid() || f.Kind() != reflect.Interface {
		return true
	}
	return !f.IsNil() && f.Elem().Type() == reflect.TypeFor[*clientCodec]()
}

// callArgs is what Call hands net/rpc as a call's argument: net/rpc passes
// it to WriteRequest untouched, and the client codec unwraps it.
type callArgs struct {
	ctx   context.Context
	args  any
	reply any // Call's reply variable, whose type its reply must fit
	// slotTaken: Call holds a WithMaxInFlight slot for this call, which
	// WriteRequest takes over.
	slotTaken bool

	mu        sync.Mutex   // guards c, seq, abandoned, wrote and noSlot
	c         *clientCodec // the codec holding the call; nil until it does
	seq       uint64
	abandoned bool         // Call has returned: its context ended
	wrote     bool         // WriteRequest has taken the call
	noSlot    *clientCodec // WriteRequest found no slot free and sent nothing
}

// GobEncode and MarshalJSON fail the call should a callArgs reach another
// codec than ours.
func (*callArgs) GobEncode() ([]byte, error)   { return nil, errNotOurClient }
func (*callArgs) MarshalJSON() ([]byte, error) { return nil, errNotOurClient }

// bind records that c holds the call seq, unless Call has abandoned it
// already. c.mu is held.
func (a *callArgs) bind(c *clientCodec, seq uint64) bool {
	if a == nil {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.abandoned {
		return false
	}
	a.c, a.seq = c, seq
	return true
}

// takeSlot is WriteRequest's first step for a call of Call: it takes over
// the slot Call holds, or takes a free one, and reports true; or it notes
// that c has none free, for Call to wait for one, and reports false.
func (a *callArgs) takeSlot(c *clientCodec) bool {
	ok := a.slotTaken || c.tryAcquire()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.wrote = true
	if !ok {
		a.noSlot = c
	}
	return ok
}

// lackedSlot returns the codec that had no slot free for the call, if so.
func (a *callArgs) lackedSlot() *clientCodec {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.noSlot
}

// written reports whether WriteRequest has taken the call.
func (a *callArgs) written() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.wrote
}

// abandon frees the call once Call's context has ended, and returns Call's
// error. It returns nil when it could not, because the call's response (a
// reply, a failure) is already on its way to net/rpc.
func (a *callArgs) abandon(method string) error {
	a.mu.Lock()
	a.abandoned = true
	c, seq := a.c, a.seq
	a.mu.Unlock()
	err := contextError(method, a.ctx.Err())
	if c == nil {
		return notSent(err) // WriteRequest has not taken the call, and will refuse it
	}
	return c.abandon(seq, err)
}

// abandon fails the pending call seq, whose caller has gone, and returns
// err, marked not sent if the call was held; nil if it was no longer
// pending. net/rpc gets a made-up response for it, so that it forgets the
// call too; nobody reads it.
func (c *clientCodec) abandon(seq uint64, err error) error {
	c.mu.Lock()
	cl := c.calls.get(seq)
	if cl == nil {
		c.mu.Unlock()
		return nil
	}
	if cl.state == held {
		err = notSent(err)
	}
	// Its hooks get err itself, not the made-up response's text.
	hooked := c.hooks.take(seq)
	c.failLocked(cl, &callError{sentinel: err, text: err.Error(), notSent: cl.state == held})
	c.mu.Unlock()
	hooked.run(err)
	return err
}

// outgoing is what a request gets before the codec builds it: the context
// of a call made by Call and the deadline it carries, and the headers the
// hooks write.
type outgoing struct {
	ctx       context.Context // context.Background() for client.Call and client.Go
	ca        *callArgs       // nil for client.Call and client.Go
	messageID string          // the correlation id, which serves as message_id too
	headers   amqp.Table
	deadline  time.Time    // from Call's context, when it has one: when the caller stops waiting
	replyType reflect.Type // of Call's reply variable, when it is a non-nil pointer
}

// prepare unwraps a call made by Call and runs the client hooks, as
// WriteRequest begins. It returns the request's argument.
func (c *clientCodec) prepare(r *rpc.Request, args any, start time.Time) (outgoing, any, error) {
	out := outgoing{ctx: context.Background(), messageID: c.ids.format(r.Seq)}
	if ca, ok := args.(*callArgs); ok {
		out.ctx, out.ca, args = ca.ctx, ca, ca.args
		if rv := reflect.ValueOf(ca.reply); rv.Kind() == reflect.Pointer && !rv.IsNil() {
			out.replyType = rv.Type()
		}
		if err := ca.ctx.Err(); err != nil {
			return out, nil, contextError(r.ServiceMethod, err)
		}
		if d, ok := ca.ctx.Deadline(); ok {
			if c.timeout > 0 && start.Add(c.timeout).Before(d) {
				d = start.Add(c.timeout)
			}
			if time.Until(d) < time.Millisecond {
				return out, nil, contextError(r.ServiceMethod, context.DeadlineExceeded)
			}
			out.deadline = d
			out.headers = amqp.Table{DeadlineHeader: d.UnixMilli()}
		}
	}
	if !c.hooks.active() {
		return out, args, nil
	}
	info := &CallInfo{
		Method:        r.ServiceMethod,
		Queue:         c.hooks.queue,
		CorrelationID: out.messageID,
		MessageID:     out.messageID,
		Header:        out.headers,
		Deadline:      out.deadline,
	}
	if info.Header == nil {
		info.Header = amqp.Table{}
	}
	if info.Deadline.IsZero() && c.timeout > 0 {
		info.Deadline = start.Add(c.timeout)
	}
	c.hooks.begin(out.ctx, r.Seq, info, start)
	if len(info.Header) > 0 {
		out.headers = info.Header
	}
	return out, args, nil
}

// expire sets when cl's request expires, and msg's expiration: at the
// call's deadline, or at Call's context's deadline when that is earlier.
func (out *outgoing) expire(cl *call, msg *amqp.Publishing) {
	cl.expireAt = cl.deadline
	if out.deadline.IsZero() {
		return
	}
	cl.expireAt = out.deadline
	msg.Expiration = expiration(time.Until(out.deadline))
}
