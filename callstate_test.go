package amqprpc

// What a failure says about whether the request was sent, with the call's
// states (callstate.go) on a fake transport: no broker.

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"reflect"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/transport"
)

// errFakeLoss is the error a fake session ends with.
var errFakeLoss = fmt.Errorf("%w: Exception (320) gone", ErrConnectionLost)

// TestUnconfirmedThenLostTimesOutAsMayHaveRun: a request published, not yet
// confirmed when its connection dropped, and then timed out while waiting
// to be sent again may have run, and its error must not say otherwise.
func TestUnconfirmedThenLostTimesOutAsMayHaveRun(t *testing.T) {
	c, f := fakeCodec(t, 2, WithConfirms(), WithCallTimeout(300*time.Millisecond))
	write(t, c, 1)
	require.Len(t, f.sent(), 1, "published")
	c.SessionLost(2, errFakeLoss)
	f.connect(0) // no session comes up in time
	r := nextResponse(t, c)
	err := Cause(rpc.ServerError(r.Error))
	assert.ErrorIs(t, err, ErrTimeout, "Error = %q", r.Error)
	assert.NotErrorIs(t, err, ErrNotSent, "Error = %q: the request was sent", r.Error)
	assert.NotContains(t, r.Error, "waited 300ms for a connection to the broker", "the text that means the request never went out")
	assert.Contains(t, r.Error, "may have run")
}

func TestWhatAFailureSaysOfTheRequest(t *testing.T) {
	tests := []struct {
		name    string
		gen     uint64 // the fake's session when the call is made
		confirm bool
		then    func(c *clientCodec, f *fakeTransport)
		notSent bool
		says    string
	}{
		{"held, timed out", 0, false, nil, true, "request not sent: Arith.Multiply waited"},
		{"sent, timed out", 2, false, nil, false, "got no reply"},
		{"unconfirmed, timed out", 2, true, nil, false, "got no reply"},
		{"sent, session lost", 2, false, func(c *clientCodec, _ *fakeTransport) { c.SessionLost(2, errFakeLoss) }, false, "connection lost"},
		{"held, borrowed connection gone", 0, false, func(c *clientCodec, _ *fakeTransport) { c.Ended(errFakeLoss) }, true, "connection lost: request not sent"},
		{"unconfirmed, nacked", 2, true, func(c *clientCodec, f *fakeTransport) { c.Confirmed(2, f.sent()[0].CorrelationId, false) }, false, "refused"},
		{"returned", 2, false, func(c *clientCodec, f *fakeTransport) {
			c.Returned(&amqp.Return{CorrelationId: f.sent()[0].CorrelationId, RoutingKey: "svc", ReplyCode: 312, ReplyText: "NO_ROUTE", Type: "Arith.Multiply"})
		}, false, "no such queue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []ClientOption{WithCallTimeout(200 * time.Millisecond)}
			if tt.confirm {
				opts = append(opts, WithConfirms())
			}
			c, f := fakeCodec(t, tt.gen, opts...)
			write(t, c, 1)
			if tt.then != nil {
				tt.then(c, f)
			}
			r := nextResponse(t, c)
			err := Cause(rpc.ServerError(r.Error))
			assert.Contains(t, r.Error, tt.says)
			assert.Equal(t, tt.notSent, errors.Is(err, ErrNotSent), "errors.Is(Cause(%q), ErrNotSent)", r.Error)
		})
	}
}

func TestCallEndedBeforeItsRequestWasSentSaysSo(t *testing.T) {
	for _, tt := range []struct {
		name    string
		gen     uint64
		notSent bool
	}{
		{"held", 0, true},
		{"sent", 2, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, f := fakeCodec(t, tt.gen, WithCallTimeout(time.Minute))
			client := rpc.NewClientWithCodec(c)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			err := Call(ctx, client, "Arith.Multiply", &Args{1, 2}, new(int))
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Equal(t, tt.notSent, errors.Is(err, ErrNotSent), "errors.Is(%v, ErrNotSent) with %d published", err, len(f.sent()))
		})
	}
}

// TestCallStateMoves checks the transitions against the diagram of
// callstate.go.
func TestCallStateMoves(t *testing.T) {
	all := []callState{held, publishing, unconfirmed, sent, resend}
	allowed := map[[2]callState]bool{
		{held, publishing}: true, {resend, publishing}: true,
		{publishing, held}: true, {publishing, resend}: true, {publishing, unconfirmed}: true, {publishing, sent}: true,
		{unconfirmed, sent}: true, {unconfirmed, resend}: true,
	}
	for _, from := range all {
		for _, to := range all {
			cl := &call{state: from}
			if got := cl.move(to); got != allowed[[2]callState{from, to}] {
				t.Errorf("%v -> %v allowed = %v; want %v", from, to, got, !got)
			}
		}
	}
}

func TestCauseFindsNotSent(t *testing.T) {
	for _, s := range callErrors {
		f := notSentFailure(s, "Arith.Multiply: %d", 7)
		got := Cause(rpc.ServerError(f.Error()))
		if !errors.Is(got, s) || !errors.Is(got, ErrNotSent) {
			t.Errorf("Cause(ServerError(%q)) = %v; want it to match %v and ErrNotSent", f, got, s)
		}
		if sent := Cause(rpc.ServerError(failure(s, "request not sent by a service name").Error())); errors.Is(sent, ErrNotSent) {
			t.Errorf("Cause of %q matches ErrNotSent; want only the marker right after the sentinel to count", sent)
		}
	}
}

// TestDefaultMethodTexts: a request with no method goes to the server's
// default method, and every error about it names that, with no hole.
func TestDefaultMethodTexts(t *testing.T) {
	texts := map[string]string{}
	c, f := fakeCodec(t, 2, WithCallTimeout(100*time.Millisecond))
	f.state = transport.QueueState{Exists: true, Consumers: 1, Messages: 1}
	require.NoError(t, c.WriteRequest(&rpc.Request{Seq: 1}, &Args{1, 2}))
	c.Returned(&amqp.Return{CorrelationId: f.sent()[0].CorrelationId, RoutingKey: "svc", ReplyCode: 312, ReplyText: "NO_ROUTE"})
	texts["returned"] = nextResponse(t, c).Error
	require.NoError(t, c.WriteRequest(&rpc.Request{Seq: 2}, &Args{1, 2}))
	texts["timed out"] = nextResponse(t, c).Error
	texts["malformed"] = c.replies.check(response{seq: 3, contentType: "application/json", body: []byte("{")}).errText
	c.replies.learn("", reflect.TypeFor[*int]())
	texts["does not fit"] = c.replies.check(response{seq: 4, contentType: "application/json", body: []byte(`"x"`)}).errText
	c.replies.cur = checkedReply{response: response{seq: 5, body: []byte(`"x"`)}, enc: codec.JSON}
	if err := c.ReadResponseBody(new(int)); err != nil {
		texts["body"] = err.Error()
	}
	for what, text := range texts {
		t.Logf("%s: %s", what, text)
		assert.Contains(t, text, "the default method", "%s: %q", what, text)
		assert.NotContains(t, text, ": :", "%s: %q", what, text)
		assert.NotContains(t, text, "  ", "%s: %q", what, text)
		assert.NotContains(t, text, "returned :", "%s: %q", what, text)
	}
	assert.Contains(t, texts["timed out"], "1 consumer, 1 request waiting")
}
