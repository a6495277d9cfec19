package amqprpc

import (
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"reflect"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/codec"
)

// response is a reply as it arrived, or a failure made up for one call.
type response struct {
	seq         uint64
	method      string
	fail        *callError // a failure made up for the call; nil for a reply
	headers     amqp.Table
	contentType string
	body        []byte
	replyType   reflect.Type // the type of Call's reply variable; nil for client.Call
}

// replyReader reads the next response for ReadResponseHeader, checks it
// before net/rpc sees it, so that a malformed reply or one that does not fit
// fails its call alone, and decodes it once. It is owned by the rpc.Client's
// reading goroutine, which calls ReadResponseHeader and then
// ReadResponseBody, one response at a time.
//
// Replies come straight from the transport's current session: no goroutine
// of ours stands between amqp091-go and net/rpc. Failures made up for calls
// come through the codec's failures queue, taken a batch at a time.
//
// Checking and decoding once: a reply to [Call] is decoded into a new value
// of its reply variable's type, which ReadResponseBody then hands over; a
// reply that does not fit fails its call. For client.Call the reader learns
// the reply types of each method from ReadResponseBody: a later reply is
// decoded into a new value of the type learned last, and fails its call if
// it fits none of the types learned.
type replyReader struct {
	bodies  *codec.Codec
	maxBody int
	types   map[string][]reflect.Type // method -> the types its replies pointed to, latest first
	cur     checkedReply

	deliveries <-chan amqp.Delivery // the current session's replies; nil between sessions
	changed    <-chan struct{}      // closed when the session changes; nil: ask the transport
	batch      []response           // failures taken from the queue, not yet read
	next       int                  // the next of batch to read
	closed     bool                 // the failures queue is closed: no more responses after batch
}

// maxReplyTypes bounds the reply types remembered per method.
const maxReplyTypes = 4

// checkedReply is the response ReadResponseHeader returned last.
type checkedReply struct {
	response
	errText string
	enc     codec.Encoding
	decoded reflect.Value // a pointer to the decoded reply, when decoded
}

// nextResponse waits for the next response: a reply to a pending call, or
// a failure made up for one. It returns io.EOF once the codec is closed,
// and the transport's reason once it has given up for good.
func (c *clientCodec) nextResponse() (response, error) {
	rd := &c.replies
	for {
		if rd.next < len(rd.batch) {
			r := rd.batch[rd.next]
			rd.batch[rd.next] = response{}
			rd.next++
			return r, nil
		}
		if rd.closed {
			if c.endErr != nil {
				return response{}, c.endErr
			}
			return response{}, io.EOF
		}
		if rd.changed == nil {
			rd.deliveries, rd.changed, _ = c.transport.Replies()
		}
		select {
		case d, ok := <-rd.deliveries:
			if !ok {
				rd.deliveries = nil // the session is ending: wait for the next
				continue
			}
			if r, ok := c.match(&d); ok {
				return r, nil
			}
		case <-rd.changed:
			rd.changed = nil
		case <-c.failures.Wake():
			rd.batch, rd.closed = c.failures.Take(rd.batch)
			rd.next = 0
		}
	}
}

// match takes the pending call a reply answers. A reply to no pending call
// (late: the call timed out or failed; or a foreign correlation id,
// forged or another client's) is dropped.
func (c *clientCodec) match(d *amqp.Delivery) (response, bool) {
	seq, ok := c.ids.parse(d.CorrelationId)
	if !ok {
		return response{}, false
	}
	c.mu.Lock()
	c.repliesSeen++
	cl := c.calls.remove(seq)
	c.mu.Unlock()
	if cl == nil {
		return response{}, false
	}
	c.release(1)
	return response{seq: seq, method: cl.method, headers: d.Headers, contentType: d.ContentType, body: d.Body, replyType: cl.replyType}, true
}

// check turns a response into what net/rpc reads: its error text, or a
// body known to be one well-formed value that fits what is known of its
// reply type.
func (rd *replyReader) check(r response) checkedReply {
	c := checkedReply{response: r}
	m := methodName(r.method)
	switch {
	case r.fail != nil:
		c.errText = r.fail.Error()
		return c
	case r.headers[ErrorHeader] != nil:
		c.errText = headerText(r.headers[ErrorHeader])
		if c.errText == "" {
			c.errText = failure(ErrMalformedReply, "%s: empty %s header", m, ErrorHeader).Error()
		}
		return c
	case len(r.body) > rd.maxBody:
		c.errText = failure(ErrBodyTooLarge, "%s reply of %d bytes, limit %d", m, len(r.body), rd.maxBody).Error()
		return c
	}
	enc, err := codec.ForContentType(r.contentType)
	if err != nil {
		c.errText = failure(ErrMalformedReply, "%s: %s", m, detail(err)).Error()
		return c
	}
	c.enc = enc
	types := rd.types[r.method]
	if r.replyType != nil {
		types = []reflect.Type{r.replyType}
	}
	if len(types) == 0 {
		// Nothing known of the type: check that it is one well-formed value.
		if err := rd.bodies.Unmarshal(enc, r.body, nil); err != nil {
			c.errText = failure(ErrMalformedReply, "%s: %s", m, detail(err)).Error()
		}
		return c
	}
	c.decoded, err = rd.decode(enc, r.body, types)
	if err != nil {
		c.errText = failure(ErrMalformedReply, "%s: %s", m, detail(err)).Error()
	}
	return c
}

// decode decodes body into a new value of the first of types and returns
// a pointer to it. A body that does not fit it but fits another of types is
// not an error, and is left for ReadResponseBody to decode; one that fits
// none, or is malformed, is.
func (rd *replyReader) decode(enc codec.Encoding, body []byte, types []reflect.Type) (reflect.Value, error) {
	v := reflect.New(types[0].Elem())
	err := rd.bodies.Unmarshal(enc, body, v.Interface())
	switch {
	case err == nil:
		return v, nil
	case errors.Is(err, codec.ErrMalformedBody):
		return reflect.Value{}, err
	}
	for _, t := range types[1:] {
		if rd.bodies.Unmarshal(enc, body, reflect.New(t.Elem()).Interface()) == nil {
			return reflect.Value{}, nil
		}
	}
	return reflect.Value{}, fmt.Errorf("reply does not fit %s: %s", types[0], detail(err))
}

// into decodes the checked reply into x, a pointer, or hands over the value
// check decoded when x points to a zero value of its type (decoding into a
// non-zero value merges, so that case is decoded again).
func (rd *replyReader) into(x any) error {
	c := &rd.cur
	xv := reflect.ValueOf(x)
	if c.decoded.IsValid() && c.decoded.Type() == xv.Type() && !xv.IsNil() && xv.Elem().IsZero() {
		xv.Elem().Set(c.decoded.Elem())
		return nil
	}
	if xv.Kind() == reflect.Pointer && !xv.IsNil() {
		rd.learn(c.method, xv.Type())
	}
	return rd.bodies.Unmarshal(c.enc, c.body, x)
}

// learn notes that replies of method are read into a *t, t a pointer type.
func (rd *replyReader) learn(method string, t reflect.Type) {
	if rd.types == nil {
		rd.types = make(map[string][]reflect.Type)
	}
	known := rd.types[method]
	if len(known) > 0 && known[0] == t {
		return
	}
	next := []reflect.Type{t}
	for _, k := range known {
		if k != t && len(next) < maxReplyTypes {
			next = append(next, k)
		}
	}
	rd.types[method] = next
}

// ReadResponseHeader waits for the next response, real or made up.
func (c *clientCodec) ReadResponseHeader(r *rpc.Response) error {
	resp, err := c.nextResponse()
	if err != nil {
		return err
	}
	c.replies.cur = c.replies.check(resp)
	r.Seq = resp.seq
	r.ServiceMethod = resp.method
	r.Error = c.replies.cur.errText
	return nil
}

// ReadResponseBody decodes the current reply into x. The reply was checked
// to be one well-formed value, so an error here means a well-formed value
// that does not fit x: the caller and the service disagree on the reply
// type, which net/rpc treats as fatal to the client.
func (c *clientCodec) ReadResponseBody(x any) (err error) {
	cur := &c.replies.cur
	defer func() { *cur = checkedReply{} }()
	if c.hooks.active() {
		defer c.hooks.endReply(cur.seq, cur.errText, &err) // hooks.go
	}
	if x == nil || cur.errText != "" {
		return nil
	}
	if err := c.replies.into(x); err != nil {
		return fmt.Errorf("amqprpc: reply to %s does not fit %T: %w", methodName(cur.method), x, err)
	}
	return nil
}
