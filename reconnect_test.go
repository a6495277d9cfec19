package amqprpc

// Faults on a private RabbitMQ node of the test's own (see
// privatenode_test.go), from which the client and server must come back by
// themselves: a stalled network, several broker URLs, a channel open that
// gets no answer. The shared broker on 5672 is never touched. The broker's
// own faults (restarts, forced closes, a blocked connection) are
// TestBrokerFaults' (faults_test.go).

import (
	"context"
	"net/rpc"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
	"github.com/amqprpc/amqprpc/transport"
)

// faultOpts make failures show quickly: a 1 s heartbeat and short
// reconnect delays.
func faultOpts(name string) []Option {
	return []Option{
		WithHeartbeat(time.Second),
		WithReconnectBackoff(50*time.Millisecond, 500*time.Millisecond),
		WithConnectionName(name),
	}
}

// faultClient and faultServerOpts are faultOpts for one side, with more.
func faultClient(name string, more ...ClientOption) []ClientOption {
	return append(asClient(faultOpts(name)), more...)
}

func faultServerOpts(name string, more ...ServerOption) []ServerOption {
	return append(asServer(faultOpts(name)), more...)
}

// loadDuring runs 32 callers while fault runs, and reports.
func loadDuring(t *testing.T, client *rpc.Client, callTimeout time.Duration, scenario string, fault func()) *brokertest.Stats {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan *brokertest.Stats)
	go func() { done <- runLoad(client, 32, callTimeout, 1, stop) }()
	time.Sleep(500 * time.Millisecond) // steady load before the fault
	fault()
	callWorks(t, client, 30*time.Second, scenario+": recovery")
	time.Sleep(500 * time.Millisecond) // steady load after recovery
	close(stop)
	st := <-done
	st.Report(t, scenario)
	st.Check(t, true)
	return st
}

// TestStalledNetwork puts a pausable proxy between the client and the
// broker and stops forwarding: calls end within their timeout, and the
// client recovers by itself once the network is back.
func TestStalledNetwork(t *testing.T) {
	node := startPrivateNode(t)
	proxy := newTCPProxy(t, node.AMQPAddr())
	queue := "stall"
	const callTimeout = 2 * time.Second
	faultServer(t, node.URL(), queue, faultServerOpts("stall-server")...)
	client, err := Dial("amqp://guest:guest@"+proxy.Addr()+"/", queue, faultClient("stall-client", WithCallTimeout(callTimeout))...)
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	callWorks(t, client, 10*time.Second, "first call")
	loadDuring(t, client, callTimeout, "network stalled 5 s between client and broker, 32 callers", func() {
		proxy.Pause()
		time.Sleep(5 * time.Second) // the stall itself
		proxy.Resume()
	})

	// Close must not wait for a reconnect that hangs in its handshake.
	accepted := proxy.Accepted()
	proxy.Pause()
	proxy.Cut()
	brokertest.WaitFor(t, 10*time.Second, "the client reconnecting into a black hole", func() bool { return proxy.Accepted() > accepted })
	within(t, 3*time.Second, "Close while reconnecting into a black hole", func() { client.Close() })
	proxy.Resume()
}

// TestSeveralBrokerURLs gives the client and server two URLs, the first of
// which stops working: both move to the second by themselves.
func TestSeveralBrokerURLs(t *testing.T) {
	node := startPrivateNode(t)
	first := newTCPProxy(t, node.AMQPAddr())
	second := newTCPProxy(t, node.AMQPAddr())
	url := func(p *tcpProxy) string { return "amqp://guest:guest@" + p.Addr() + "/" }
	queue := "urls"
	faultServer(t, url(first), queue, faultServerOpts("urls-server", WithURLs(url(second)))...)
	client, err := Dial(url(first), queue, faultClient("urls-client", WithURLs(url(second)), WithCallTimeout(5*time.Second))...)
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	callWorks(t, client, 10*time.Second, "first call")
	if second.Conns() != 0 {
		t.Fatalf("second URL has %d connections before the first failed; want 0", second.Conns())
	}
	first.Close() // the first node is gone: refused from now on
	callWorks(t, client, 30*time.Second, "after the first URL went away")
	if second.Conns() < 2 {
		t.Fatalf("second URL has %d connections; want the client's and the server's", second.Conns())
	}
}

// TestChannelOpenIsBounded black-holes the network right after the AMQP
// handshake, so opening the channel gets no answer: amqp091-go would wait
// forever (no heartbeat is armed yet), the client must give up in time.
func TestChannelOpenIsBounded(t *testing.T) {
	node := startPrivateNode(t)
	proxy := newTCPProxy(t, node.AMQPAddr())
	dial := func(ctx context.Context) (*amqp.Connection, error) {
		d := &dialer{urls: []string{"amqp://guest:guest@" + proxy.Addr() + "/"}}
		conn, err := d.Dial(ctx)
		proxy.Pause()
		return conn, err
	}
	start := time.Now()
	_, err := transport.NewClient(context.Background(), transport.ClientConfig{Config: transport.Config{Dial: dial, OpenTimeout: 2 * time.Second}}, nil)
	if err == nil {
		t.Fatal("NewClient over a black hole = nil error; want a failure")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("NewClient over a black hole took %v; want about the 2s open timeout", d)
	}
	t.Logf("NewClient over a black hole failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	proxy.Resume()
}
