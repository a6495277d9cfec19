package amqprpc

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/codec"
)

func TestOptionDefaults(t *testing.T) {
	c, err := newClientOptions(nil)
	require.NoError(t, err)
	assert.Equal(t, codec.Gob, c.encoding)
	assert.Equal(t, DefaultCallTimeout, c.callTimeout)
	assert.Equal(t, DefaultMaxBodySize, c.maxBody)
	assert.False(t, c.directReplyTo || c.confirms)
	assert.NotNil(t, c.logger, "a nil logger would need a check at every log call")

	s, err := newServerOptions(nil)
	require.NoError(t, err)
	assert.Equal(t, DefaultPrefetch, s.prefetch)
	assert.Equal(t, DefaultShutdownGrace, s.shutdownGrace)
	assert.False(t, s.transient || s.quorum || s.confirms)
}

func TestOptionValidation(t *testing.T) {
	clientTests := []struct {
		name string
		opts []ClientOption
		want string // in the error
	}{
		{"negative timeout", []ClientOption{WithCallTimeout(-time.Second)}, "WithCallTimeout"},
		{"sub-millisecond timeout", []ClientOption{WithCallTimeout(time.Microsecond)}, "1ms"},
		{"unknown encoding", []ClientOption{WithEncoding(codec.Encoding(9))}, "WithEncoding"},
		{"negative in-flight bound", []ClientOption{WithMaxInFlight(-1)}, "WithMaxInFlight"},
		{"body size 0", []ClientOption{WithMaxBodySize(0)}, "WithMaxBodySize"},
		{"backoff inverted", []ClientOption{WithReconnectBackoff(time.Second, time.Millisecond)}, "WithReconnectBackoff"},
		{"nil option", []ClientOption{nil}, "nil option"},
	}
	for _, tt := range clientTests {
		t.Run("client/"+tt.name, func(t *testing.T) {
			_, err := newClientOptions(tt.opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "amqprpc: "), "error %q lacks the amqprpc: prefix", err)
		})
	}
	serverTests := []struct {
		name string
		opts []ServerOption
		want string
	}{
		{"prefetch 0", []ServerOption{WithPrefetch(0)}, "WithPrefetch(0)"},
		{"prefetch too big", []ServerOption{WithPrefetch(70000)}, "WithPrefetch(70000)"},
		{"quorum and transient", []ServerOption{WithQuorumQueue(), WithTransientQueue()}, "quorum"},
		{"negative heartbeat", []ServerOption{WithHeartbeat(-time.Second)}, "WithHeartbeat"},
		{"negative shutdown grace", []ServerOption{WithShutdownGrace(-time.Second)}, "WithShutdownGrace"},
		{"nil option", []ServerOption{nil}, "nil option"},
	}
	for _, tt := range serverTests {
		t.Run("server/"+tt.name, func(t *testing.T) {
			_, err := newServerOptions(tt.opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := newClientOptions([]ClientOption{WithCallTimeout(0)})
	assert.NoError(t, err, "WithCallTimeout(0) means never time out")
}

// TestOptionsForBothSides checks that an Option of both sides reaches the
// options of each; one side's options do not compile for the other.
func TestOptionsForBothSides(t *testing.T) {
	l := slog.Default()
	both := []Option{WithConfirms(), WithMaxBodySize(7), WithLogger(l), WithURLs("amqp://b/"), WithConnectionName("n")}
	c, err := newClientOptions(asClient(both))
	require.NoError(t, err)
	s, err := newServerOptions(asServer(both))
	require.NoError(t, err)
	for _, o := range []options{c.options, s.options} {
		assert.True(t, o.confirms)
		assert.Equal(t, 7, o.maxBody)
		assert.Same(t, l, o.logger)
		assert.Equal(t, []string{"amqp://b/"}, o.urls)
		assert.Equal(t, "n", o.name)
	}
	c, err = newClientOptions([]ClientOption{WithLogger(nil)})
	require.NoError(t, err)
	assert.NotNil(t, c.logger, "WithLogger(nil) means log nothing")
}

func TestDialRejectsBadArguments(t *testing.T) {
	for _, queue := range []string{"", strings.Repeat("q", 256), "amq.gen-x"} {
		_, err := Dial("amqp://guest:guest@127.0.0.1:1/", queue)
		if assert.Error(t, err, "Dial(queue %.20q)", queue) {
			assert.True(t, strings.HasPrefix(err.Error(), "amqprpc: "), "Dial(queue %.20q) = %v; want an amqprpc error", queue, err)
		}
	}
	_, err := Dial("amqp://guest:guest@127.0.0.1:1/", "q", WithMaxInFlight(-1))
	assert.Error(t, err, "Dial with WithMaxInFlight(-1)")
}
