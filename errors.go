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
	// [WithMaxInFlight] allows: at once for client.Go and client.Call, and
	// for [Call] once none finished within the call timeout.
	ErrTooManyCalls = errors.New("amqprpc: too many calls in flight")
	// ErrUnencodable: AMQP cannot carry the request: its method or a
	// header name is over 255 bytes, a header value is of a type an AMQP
	// table cannot hold, or its properties and headers are larger than a
	// frame (the broker's frame_max).
	ErrUnencodable = transport.ErrUnencodable

	// ErrNotSent is matched, besides the failure's own sentinel, by a call
	// that failed before its request left the client: the method cannot
	// have run, and calling again is safe. errors.Is(Cause(err), ErrNotSent)
	// tells it, for the errors Call and client.Call return. A failure that
	// does not match it may have run: the request was sent, or may have
	// been.
	ErrNotSent = errors.New("amqprpc: request not sent")
)

// callErrors is the one table between sentinels and the texts that carry
// them: a failure is written as a sentinel's text, ": " and a detail
// ([failure]), and read back by matching those texts ([Cause]).
//
// A failure whose request was never sent says so right after the
// sentinel's text: "amqprpc: call timed out: request not sent: ...". That
// is how [Cause] finds [ErrNotSent] in it too.
var callErrors = []error{
	ErrTimeout, ErrNoQueue, ErrConnectionLost, ErrBlocked, ErrClosed,
	ErrMalformedReply, ErrMalformedRequest, ErrNoMethod,
	ErrUnsupportedContentType, ErrBodyTooLarge, ErrNacked, ErrTooManyCalls,
	ErrUnencodable,
}

// notSentMark follows a sentinel's text in the text of a failure whose
// request was never sent.
const notSentMark = "request not sent"

// callError is a call failure: its sentinel and its text, which starts with
// the sentinel's, and whether its request was never sent.
type callError struct {
	sentinel error
	text     string
	notSent  bool
}

func (e *callError) Error() string { return e.text }

// Unwrap returns the sentinel, and ErrNotSent for a request never sent.
func (e *callError) Unwrap() []error {
	if e.notSent {
		return []error{e.sentinel, ErrNotSent}
	}
	return []error{e.sentinel}
}

// failure makes a call failure from a sentinel of callErrors and a detail.
func failure(sentinel error, format string, args ...any) *callError {
	return &callError{sentinel: sentinel, text: sentinel.Error() + ": " + fmt.Sprintf(format, args...)}
}

// notSentFailure makes the failure of a call whose request was never sent.
func notSentFailure(sentinel error, format string, args ...any) *callError {
	text := sentinel.Error() + ": " + notSentMark + ": " + fmt.Sprintf(format, args...)
	return &callError{sentinel: sentinel, text: text, notSent: true}
}

// asFailure makes err a call failure: err itself when it wraps a sentinel
// of callErrors, else a failure of fallback with err's text as the detail.
func asFailure(err error, fallback error) *callError {
	for _, s := range callErrors {
		if errors.Is(err, s) {
			return &callError{sentinel: s, text: err.Error(), notSent: errors.Is(err, ErrNotSent)}
		}
	}
	return failure(fallback, "%s", detail(err))
}

// notSent marks err, an error of a call whose request never left the
// client, as matching ErrNotSent too; its text stays.
func notSent(err error) error {
	if err == nil || errors.Is(err, ErrNotSent) {
		return err
	}
	var f *callError
	if errors.As(err, &f) && f == err {
		return &callError{sentinel: f.sentinel, text: f.text, notSent: true}
	}
	return &notSentError{err}
}

// notSentError is an error that is not a call failure of ours (a context's
// end, a body that did not encode) for a request never sent.
type notSentError struct{ err error }

func (e *notSentError) Error() string   { return e.err.Error() }
func (e *notSentError) Unwrap() []error { return []error{e.err, ErrNotSent} }

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
			rest := strings.TrimPrefix(text, st+": ")
			notSent := rest == notSentMark || strings.HasPrefix(rest, notSentMark+":")
			return &callError{sentinel: s, text: text, notSent: notSent}
		}
	}
	return err
}

// methodName names a call's method in an error: its ServiceMethod, or "the
// default method" for a request with none, which the server routes to its
// default method (WithDefaultMethod).
func methodName(m string) string {
	if m == "" {
		return "the default method"
	}
	return m
}

// detail is an error's text without the amqprpc: prefix, for nesting in
// another amqprpc error.
func detail(err error) string {
	return strings.TrimPrefix(err.Error(), "amqprpc: ")
}
