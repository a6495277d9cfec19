package floor

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

func (c *corkConn) writeCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// With Coalesce, a serial call's reply and its acknowledgement leave the
// server in one write, where amqp091-go alone makes two.
func TestEchoCoalesceOneWritePerCall(t *testing.T) {
	url := brokertest.URL(t)
	queue := brokertest.Queue(t, url, t.Name())
	o := EchoOptions{Prefetch: 8, DurableQueue: true, Coalesce: 16}
	s, err := ServeEcho(url, queue, o, nil)
	require.NoError(t, err)
	defer s.Close()
	c, err := DialEcho(url, queue, o)
	require.NoError(t, err)
	defer c.Close()

	_, err = c.Call([]byte("warm"))
	require.NoError(t, err)
	before := s.cork.writeCount()
	for range 5 {
		got, err := c.Call([]byte("ping"))
		require.NoError(t, err)
		require.Equal(t, "ping", string(got))
	}
	// Heartbeats (every 10 s) could add a write; 5 calls take far less.
	require.Equal(t, 5, s.cork.writeCount()-before, "writes for 5 serial calls")
}
