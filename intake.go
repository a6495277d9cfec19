package amqprpc

import (
	"fmt"
	"io"
	"net/rpc"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/transport"
)

// The server codec's intake: how a request taken from the queue is read,
// refused, answered by the codec itself (a ping), or handed to net/rpc.

// PingType is the request type that a server answers in its codec, before
// and without net/rpc: a no-op to see whether a server is consuming a queue
// and how long a round trip takes (the amqprpc command's ping uses it). Its
// reply is the string "pong" in the request's encoding. No service can
// claim the name: net/rpc serves only exported methods, and "ping" is not
// one.
const PingType = "amqprpc.ping"

// pingReply is the value a ping's reply carries.
const pingReply = "pong"

// ReadRequestHeader takes the next request. Requests the codec answers on
// its own (a ping, or a refusal: no method, unknown content type, too
// large) get their reply here and never reach net/rpc. It returns io.EOF,
// which ends ServeCodec, only once the codec is stopping or closed.
func (c *serverCodec) ReadRequestHeader(r *rpc.Request) error {
	for {
		req, err := c.t.Next()
		if err != nil {
			return io.EOF
		}
		if c.poison.poisonous(&req.Delivery) {
			c.log.Error("amqprpc: rejected a request whose reply_to made the broker close the connection",
				"reply_to", fmt.Sprintf("%.80s", req.ReplyTo), "message_id", fmt.Sprintf("%.64s", req.MessageId))
			_ = c.t.Reject(&req, false)
			continue
		}
		in, own := c.accept(req)
		c.hooks.begin(in, c.base) // hooks.go
		c.stats.begin(in)         // stats.go
		if own != nil {
			if !c.out.put(*own) {
				c.putBack(in, failure(ErrClosed, "the server stopped before it could answer: the request is back in the queue"))
				return io.EOF
			}
			continue
		}
		if c.store != nil && !c.claimFirst(in) { // storedreplies.go
			continue
		}
		if !c.admit(in) {
			c.putBack(in, failure(ErrClosed, "the server stopped before the method ran: the request is back in the queue"))
			return io.EOF
		}
		r.Seq = in.seq
		r.ServiceMethod = in.method
		c.cur = in
		return nil
	}
}

// accept reads a request's properties. When the codec answers the request
// itself, own is its reply: a refusal, or a ping's pong.
func (c *serverCodec) accept(req transport.Request) (in *inbound, own *outbound) {
	in = &inbound{req: req, method: req.Type, enc: codec.JSON}
	refuse := func(text string) (*inbound, *outbound) { return in, &outbound{in: in, errText: text} }
	enc, err := codec.ForContentType(req.ContentType)
	if err != nil {
		return refuse(err.Error())
	}
	in.enc = enc
	if in.method == "" {
		in.method = c.defaultMethod
	}
	switch {
	case in.method == "":
		return refuse(ErrNoMethod.Error())
	case len(req.Body) > c.maxBody:
		return refuse(failure(ErrBodyTooLarge, "%.64s request of %d bytes, limit %d", in.method, len(req.Body), c.maxBody).Error())
	case req.Type == PingType:
		return in, &outbound{in: in, body: pingReply}
	}
	return in, nil
}

// admit numbers a request for net/rpc and records it as running; it
// reports false, admitting nothing, once Close has begun.
func (c *serverCodec) admit(in *inbound) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.seq++
	in.seq = c.seq
	c.running[c.seq] = in
	return true
}

// ReadRequestBody decodes the argument of the request ReadRequestHeader
// returned; a nil x discards it. A body that does not decode becomes an
// error reply, sent by net/rpc.
func (c *serverCodec) ReadRequestBody(x any) error {
	in := c.cur
	c.cur = nil
	if x == nil || in == nil {
		return nil
	}
	in.known = true // net/rpc asks for the body of a method it found (stats.go)
	if err := c.bodies.Unmarshal(in.enc, in.req.Body, x); err != nil {
		return failure(ErrMalformedRequest, "%s: %s", in.method, detail(err))
	}
	if d, ok := x.(deliveryReceiver); ok {
		d.setDelivery(in.req.MessageId, in.req.Redelivered)
	}
	if d, ok := x.(contextReceiver); ok {
		ctx := c.base
		if in.rc != nil {
			ctx = in.rc.ctx
		}
		d.setContext(ctx) // context.go
	}
	return nil
}
