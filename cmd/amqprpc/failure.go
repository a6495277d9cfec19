package main

import (
	"errors"
	"fmt"
	"net/rpc"
	"strings"

	"github.com/amqprpc/amqprpc"
)

// usageErr is a failure that is the caller's mistake.
type usageErr struct{ text string }

func (e *usageErr) Error() string { return e.text }

// failure turns an error from dial or a call into an exit status and a
// line for stderr that says what went wrong and what to do about it.
func failure(cmd, method string, err error) (int, string) {
	var ue *usageErr
	if errors.As(err, &ue) {
		return exitUsage, fmt.Sprintf("%s: %s (run %s -h for usage)", cmd, ue.text, cmd)
	}
	text := strings.TrimPrefix(err.Error(), "amqprpc: ")
	line := func(code int, advice string) (int, string) {
		if advice == "" {
			return code, cmd + ": " + text
		}
		return code, cmd + ": " + text + "; " + advice
	}
	var de *amqprpc.DialError
	if errors.As(err, &de) {
		switch {
		case strings.Contains(text, "403"), strings.Contains(text, "ACCESS_REFUSED"):
			return line(exitTransit, "check the user name and password in -url or $AMQP_URL")
		case strings.Contains(text, "530"), strings.Contains(text, "vhost"):
			return line(exitTransit, "check the vhost in -url or $AMQP_URL")
		}
		return line(exitTransit, "is the broker running, and are -url or $AMQP_URL right?")
	}
	var se rpc.ServerError
	if !errors.As(err, &se) {
		return line(exitTransit, "")
	}
	cause := amqprpc.Cause(err)
	switch {
	case cause == err:
		// The service's own error, or net/rpc's refusal.
		if strings.HasPrefix(text, "rpc: can't find") || strings.HasPrefix(text, "rpc: service/method request ill-formed") {
			return line(exitFailed, "check SERVICE.METHOD: names are case-sensitive, as registered with net/rpc")
		}
		if method == "" {
			method = "the default method"
		}
		return exitFailed, fmt.Sprintf("%s: %s", method, text)
	case errors.Is(cause, amqprpc.ErrMalformedRequest):
		return line(exitFailed, "the argument does not fit the method's argument type")
	case errors.Is(cause, amqprpc.ErrNoMethod):
		return line(exitFailed, "name the method: SERVICE.METHOD")
	case errors.Is(cause, amqprpc.ErrUnsupportedContentType):
		return line(exitFailed, "this server does not take that encoding (try with or without -text)")
	case errors.Is(cause, amqprpc.ErrNoQueue):
		return line(exitTransit, "is the service's server running? queue names are case-sensitive")
	case errors.Is(cause, amqprpc.ErrTimeout):
		return line(exitTransit, "is a server consuming the queue? a slow method needs a longer -timeout (amqprpc ping QUEUE tells whether an amqprpc server answers; a server that is not one may crash on a ping)")
	case strings.Contains(text, "ACCESS_REFUSED"):
		return line(exitTransit, "the broker user may not publish to the default exchange or read its reply queue")
	}
	return line(exitTransit, "")
}
