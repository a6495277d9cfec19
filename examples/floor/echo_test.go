package floor_test

import (
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/examples/floor"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

func TestMain(m *testing.M) { brokertest.Main(m) }

// The no-ack floor takes every request at once, whatever its prefetch, and
// still answers each: with acknowledgements and a prefetch of 1, two of
// three requests would wait in the queue while the first is held.
func TestEchoAutoAckTakesEveryRequest(t *testing.T) {
	url := brokertest.URL(t)
	queue := brokertest.Queue(t, url, t.Name())
	replies := brokertest.Queue(t, url, t.Name()+"-replies")
	release := make(chan struct{})
	held := func(body []byte) ([]byte, error) { <-release; return body, nil }
	s, err := floor.ServeEcho(url, queue, floor.EchoOptions{Prefetch: 1, DurableQueue: true, AutoAck: true}, held)
	require.NoError(t, err)
	defer s.Close()
	defer close(release) // before Close: the server may still hold a request

	conn, ch := brokertest.Conn(t, url)
	_, err = ch.QueueDeclare(replies, false, false, false, false, nil)
	require.NoError(t, err)
	for i := range 3 {
		err := ch.Publish("", queue, false, false, amqp.Publishing{
			CorrelationId: fmt.Sprint(i), ReplyTo: replies, Body: []byte{byte(i)},
		})
		require.NoError(t, err)
	}
	brokertest.WaitFor(t, 10*time.Second, "the server to take all three requests", func() bool {
		return brokertest.Depth(conn, queue) == 0
	})
	release <- struct{}{} // the first request's reply
	got := brokertest.Consume(t, ch, replies)
	require.Equal(t, "0", brokertest.NextDelivery(t, got, "the first reply").CorrelationId)
}
