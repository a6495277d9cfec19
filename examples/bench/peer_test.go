package main

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// Both of the peer's modes serve Service.Small, and stopping leaves no
// queue behind.
func TestPeer(t *testing.T) {
	url := brokertest.URL(t)
	for name, m := range map[string]peerMode{"defaults": peerDefaults, "fast": peerFast} {
		t.Run(name, func(t *testing.T) {
			queue := brokertest.Queue(t, url, t.Name())
			c, stop, err := peerStart(m)(url, queue)
			require.NoError(t, err)
			for range 3 {
				reply := small.newReply()
				require.NoError(t, c.Call(small.method, small.args, reply))
				require.NoError(t, small.check(reply))
			}
			require.Error(t, c.Call(blob4K.method, blob4K.args, blob4K.newReply()))
			replies := c.(*peerCaller).replyQueue.Load()
			require.NotNil(t, replies, "the server saw no reply_to")
			require.NoError(t, c.Close())
			stop()
			conn, err := amqp.Dial(url)
			require.NoError(t, err)
			defer conn.Close()
			require.Equal(t, -1, brokertest.Consumers(conn, queue), "the request queue is left")
			require.Equal(t, -1, brokertest.Consumers(conn, *replies), "the reply queue is left")
		})
	}
}
