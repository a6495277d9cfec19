package amqprpc

import (
	"errors"
	"fmt"
	"net/rpc"
	"strings"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/transport"
)

// Errors a caller can test for. A call that fails for one of these reasons
// reaches the caller as an [rpc.ServerError] whose text starts with the
// sentinel's text (net/rpc turns every per-call failure into one); [Cause]
// maps it back so that errors.Is works. [Dial], [Serve] and the codec
// constructors return them as values.
var (
	// ErrTimeout: the call got no reply within its call timeout.
	ErrTimeout = errors.New("amqprpc: call timed out")
	// ErrNoQueue: the broker returned the request because no queue has the
	// service's name.
	ErrNoQueue = errors.New("amqprpc: no such queue")
	// ErrConnectionLost: the connection or channel ended while the call
	// was in flight; its reply, if any, can no longer arrive.
	ErrConnectionLost = transport.ErrConnectionLost
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
	// ErrUnsupportedContentType: the content type names no encoding of codec.
	ErrUnsupportedContentType = codec.ErrUnsupportedContentType
	// ErrBodyTooLarge: a request or reply body exceeds the size limit.
	ErrBodyTooLarge = errors.New("amqprpc: body too large")
	// ErrNacked: with publisher confirms on, the broker refused the request.
	// As a rule it did not run; but a quorum queue losing its leader
	// (RabbitMQ 3.10) has nacked requests it then delivered, so there it
	// may have run.
	ErrNacked = errors.New("amqprpc: broker refused the request")
	// ErrTooManyCalls: the client already has as many calls in flight as
	// [WithMaxInFlight] allows, and none finished within the call timeout.
	ErrTooManyCalls = errors.New("amqprpc: too many calls in flight")
)

// callErrors is the one table between sentinels and the texts that carry
// them: a failure is written as a sentinel's text, ": " and a detail
// ([failure]), and read back by matching those texts ([Cause]).
var callErrors = []error{
	ErrTimeout, ErrNoQueue, ErrConnectionLost, ErrBlocked, ErrClosed,
	ErrMalformedReply, ErrMalformedRequest, ErrNoMethod,
	ErrUnsupportedContentType, ErrBodyTooLarge, ErrNacked, ErrTooManyCalls,
}

// callError is a call failure: its sentinel and its text, which starts with
// the sentinel's.
type callError struct {
	sentinel error
	text     string
}

func (e *callError) Error() string { return e.text }
func (e *callError) Unwrap() error { return e.sentinel }

// failure makes a call failure from a sentinel of callErrors and a detail.
func failure(sentinel error, format string, args ...any) *callError {
	return &callError{sentinel: sentinel, text: sentinel.Error() + ": " + fmt.Sprintf(format, args...)}
}

// asFailure makes err a call failure: err itself when it wraps a sentinel
// of callErrors, else a failure of fallback with err's text as the detail.
func asFailure(err error, fallback error) *callError {
	for _, s := range callErrors {
		if errors.Is(err, s) {
			return &callError{sentinel: s, text: err.Error()}
		}
	}
	return failure(fallback, "%s", detail(err))
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
	for _, s := range callErrors {
		st := s.Error()
		if text == st || strings.HasPrefix(text, st+":") || strings.HasPrefix(text, st+" ") {
			return &callError{sentinel: s, text: text}
		}
	}
	return err
}

// detail is an error's text without the amqprpc: prefix, for nesting in
// another amqprpc error.
func detail(err error) string {
	return strings.TrimPrefix(err.Error(), "amqprpc: ")
}
