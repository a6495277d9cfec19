package amqprpc

import (
	"errors"
	"net/rpc"
	"strings"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/transport"
)

// Errors a caller can test for. A call that fails for one of these reasons
// reaches the caller as an [rpc.ServerError] whose text starts with the
// sentinel's text (net/rpc turns every per-call failure into one); [Cause]
// maps it back so that errors.Is works.
var (
	// ErrTimeout: the call got no reply within its call timeout.
	ErrTimeout = errors.New("amqprpc: call timed out")
	// ErrNoQueue: the broker returned the request because no queue has the
	// service's name.
	ErrNoQueue = errors.New("amqprpc: no such queue")
	// ErrConnectionLost: the connection or channel ended while the call
	// was in flight; its reply, if any, can no longer arrive.
	ErrConnectionLost = transport.ErrConnectionLost
	// ErrNotConnected: the client is between connections.
	ErrNotConnected = transport.ErrNotConnected
	// ErrBlocked: the broker has blocked publishing (a resource alarm).
	ErrBlocked = transport.ErrBlocked
	// ErrClosed: the client or server codec is closed.
	ErrClosed = transport.ErrClosed
	// ErrMalformedReply: the reply was not one well-formed value of its
	// content type.
	ErrMalformedReply = errors.New("amqprpc: malformed reply")
	// ErrMalformedRequest: the server could not decode the request body.
	ErrMalformedRequest = errors.New("amqprpc: malformed request")
	// ErrNoMethod: the request had no type and the server no default method.
	ErrNoMethod = errors.New("amqprpc: request has no type and the server has no default method")
	// ErrUnsupportedContentType: the content type names neither gob nor JSON.
	ErrUnsupportedContentType = codec.ErrUnsupportedContentType
	// ErrBodyTooLarge: a request or reply body exceeds the size limit.
	ErrBodyTooLarge = errors.New("amqprpc: body too large")
	// ErrNacked: with publisher confirms on, the broker refused the request.
	ErrNacked = errors.New("amqprpc: broker refused the request")
	// ErrTooManyCalls: the client already has as many calls in flight as
	// [WithMaxInFlight] allows, and none finished within the call timeout.
	ErrTooManyCalls = errors.New("amqprpc: too many calls in flight")
)

// sentinels lists the errors Cause recognises, most specific text first.
var sentinels = []error{
	ErrTimeout, ErrNoQueue, ErrConnectionLost, ErrNotConnected, ErrBlocked,
	ErrClosed, ErrMalformedReply, ErrMalformedRequest, ErrNoMethod,
	ErrUnsupportedContentType, ErrBodyTooLarge, ErrNacked, ErrTooManyCalls,
}

// Cause returns an error that wraps the amqprpc sentinel a failed call
// carries, so that errors.Is(amqprpc.Cause(err), amqprpc.ErrTimeout) works
// on the [rpc.ServerError] that net/rpc hands the caller. Its text is err's.
// Any other error, a service's own included, is returned unchanged, so
// Cause(err) != err tells a transport failure from a service error.
//
// An rpc.ServerError is only a string, so Cause matches its text: a service
// that returns the error of a call it made itself, unchanged, hands that
// failure on to its own caller. Services should wrap such errors.
func Cause(err error) error {
	var se rpc.ServerError
	if !errors.As(err, &se) {
		return err
	}
	text := string(se)
	for _, s := range sentinels {
		st := s.Error()
		if text == st || strings.HasPrefix(text, st+":") || strings.HasPrefix(text, st+" ") {
			return &callError{sentinel: s, text: text}
		}
	}
	return err
}

// callError is a call failure: its text for the caller and its sentinel.
type callError struct {
	sentinel error
	text     string
}

func (e *callError) Error() string { return e.text }
func (e *callError) Unwrap() error { return e.sentinel }
