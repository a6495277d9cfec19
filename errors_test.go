package amqprpc

import (
	"errors"
	"net/rpc"
	"testing"
)

func TestCause(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{rpc.ServerError(ErrTimeout.Error() + `: Arith.Multiply got no reply`), ErrTimeout},
		{rpc.ServerError(ErrNoQueue.Error() + `: "arith"`), ErrNoQueue},
		{rpc.ServerError(ErrConnectionLost.Error() + `: Exception (320)`), ErrConnectionLost},
		{rpc.ServerError(ErrMalformedReply.Error() + ": Arith.Multiply: json"), ErrMalformedReply},
		{rpc.ServerError(ErrNoMethod.Error()), ErrNoMethod},
		{rpc.ServerError(ErrBodyTooLarge.Error() + ": 20 bytes"), ErrBodyTooLarge},
	}
	for _, tt := range tests {
		got := Cause(tt.err)
		if !errors.Is(got, tt.want) {
			t.Errorf("Cause(%q) = %v; want it to match %v", tt.err, got, tt.want)
		}
		if got.Error() != tt.err.Error() {
			t.Errorf("Cause(%q).Error() = %q; want the text unchanged", tt.err, got.Error())
		}
		for _, other := range callErrors {
			if other != tt.want && errors.Is(got, other) {
				t.Errorf("Cause(%q) matches %v too", tt.err, other)
			}
		}
	}
}

func TestCauseLeavesOtherErrorsAlone(t *testing.T) {
	plain := errors.New("amqprpc: call timed out")
	for _, err := range []error{
		nil,
		plain, // not a ServerError: already an error value
		rpc.ServerError("divide by zero"),
		rpc.ServerError("amqprpc: call timed outside"), // a prefix, not the sentinel
		rpc.ErrShutdown,
	} {
		if got := Cause(err); got != err {
			t.Errorf("Cause(%v) = %v; want it unchanged", err, got)
		}
	}
}

func TestSentinelTexts(t *testing.T) {
	for _, s := range callErrors {
		if len(s.Error()) < len("amqprpc: x") || s.Error()[:9] != "amqprpc: " {
			t.Errorf("sentinel %q lacks the amqprpc: prefix", s)
		}
	}
}

// TestFailureRoundTrip checks that the one table reads back every failure
// it writes: the text a caller gets maps to the sentinel it was made from.
func TestFailureRoundTrip(t *testing.T) {
	for _, s := range callErrors {
		f := failure(s, "Arith.Multiply: %d", 7)
		if !errors.Is(f, s) {
			t.Errorf("failure(%v) does not match its sentinel", s)
		}
		got := Cause(rpc.ServerError(f.Error()))
		if !errors.Is(got, s) {
			t.Errorf("Cause(ServerError(%q)) = %v; want it to match %v", f, got, s)
		}
		for _, other := range callErrors {
			if other != s && errors.Is(got, other) {
				t.Errorf("Cause(ServerError(%q)) matches %v too", f, other)
			}
		}
	}
}
