package amqprpc

import (
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"reflect"
	"sync"

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
}

// inbox queues responses for ReadResponseHeader.
type inbox struct {
	mu     sync.Mutex // guards queue, at, closed and ended
	queue  []response
	at     int // the next response to read
	closed bool
	ended  error         // why the transport gave up for good
	wake   chan struct{} // capacity 1: queue grew, or the inbox closed or ended
}

func (b *inbox) put(r response) {
	b.mu.Lock()
	b.queue = append(b.queue, r)
	b.mu.Unlock()
	b.signal()
}

// take waits for the next response; it returns io.EOF once the inbox is
// closed and the error it ended with once it has ended.
func (b *inbox) take() (response, error) {
	for {
		b.mu.Lock()
		if b.at < len(b.queue) {
			r := b.queue[b.at]
			b.queue[b.at] = response{}
			if b.at++; b.at == len(b.queue) {
				b.queue, b.at = b.queue[:0], 0 // empty: reuse the array
			}
			b.mu.Unlock()
			return r, nil
		}
		closed, ended := b.closed, b.ended
		b.mu.Unlock()
		if closed {
			return response{}, io.EOF
		}
		if ended != nil {
			return response{}, ended
		}
		<-b.wake
	}
}

func (b *inbox) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.signal()
}

func (b *inbox) end(err error) {
	b.mu.Lock()
	b.ended = err
	b.mu.Unlock()
	b.signal()
}

func (b *inbox) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// replyReader checks each reply before net/rpc sees it, so that a malformed
// one fails its call alone, and decodes it once. It is owned by the
// rpc.Client's reading goroutine, which calls ReadResponseHeader and then
// ReadResponseBody, one response at a time.
//
// Decoding once: the reader learns the reply type of each method from the
// first ReadResponseBody. Later replies are checked by decoding them into a
// new value of that type, which ReadResponseBody then hands over; a reply
// that does not fit it is checked as an untyped value instead, and decoded
// into whatever net/rpc passes.
type replyReader struct {
	bodies  *codec.Codec
	maxBody int
	types   map[string]reflect.Type // method -> the type its replies point to
	cur     checkedReply
}

// checkedReply is the response ReadResponseHeader returned last.
type checkedReply struct {
	response
	errText string
	enc     codec.Encoding
	decoded reflect.Value // a pointer to the decoded reply, when decoded
}

// check turns a response into what net/rpc reads: its error text, or a
// body known to be one well-formed value.
func (rd *replyReader) check(r response) checkedReply {
	c := checkedReply{response: r}
	switch {
	case r.fail != nil:
		c.errText = r.fail.Error()
		return c
	case r.headers[ErrorHeader] != nil:
		c.errText = headerText(r.headers[ErrorHeader])
		if c.errText == "" {
			c.errText = failure(ErrMalformedReply, "%s: empty %s header", r.method, ErrorHeader).Error()
		}
		return c
	case len(r.body) > rd.maxBody:
		c.errText = failure(ErrBodyTooLarge, "%s reply of %d bytes, limit %d", r.method, len(r.body), rd.maxBody).Error()
		return c
	}
	enc, err := codec.ForContentType(r.contentType)
	if err != nil {
		c.errText = failure(ErrMalformedReply, "%s: %s", r.method, detail(err)).Error()
		return c
	}
	c.enc = enc
	if t := rd.types[r.method]; t != nil {
		v := reflect.New(t)
		err := rd.bodies.Unmarshal(enc, r.body, v.Interface())
		switch {
		case err == nil:
			c.decoded = v
			return c
		case errors.Is(err, codec.ErrMalformedBody):
			// Malformed as this method's replies are known to be: a text
			// body only has a form once a type reads it.
			c.errText = failure(ErrMalformedReply, "%s: %s", r.method, detail(err)).Error()
			return c
		}
	}
	if err := rd.bodies.Unmarshal(enc, r.body, nil); err != nil {
		c.errText = failure(ErrMalformedReply, "%s: %s", r.method, detail(err)).Error()
	}
	return c
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
		if rd.types == nil {
			rd.types = make(map[string]reflect.Type)
		}
		rd.types[c.method] = xv.Type().Elem()
	}
	return rd.bodies.Unmarshal(c.enc, c.body, x)
}

// ReadResponseHeader waits for the next response, real or made up.
func (c *clientCodec) ReadResponseHeader(r *rpc.Response) error {
	resp, err := c.inbox.take()
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
		return fmt.Errorf("amqprpc: reply to %s does not fit %T: %w", cur.method, x, err)
	}
	return nil
}
