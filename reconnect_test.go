package amqprpc

// Broker faults on a private RabbitMQ node of the test's own (see
// privatenode_test.go), from which the client and server must come back by
// themselves: broker restarts, forced closes, a stalled network, a blocked
// connection, several broker URLs, a channel open that gets no answer. The
// shared broker on 5672 is never touched. One node serves every scenario of
// TestBrokerFaults, in turn, to keep the boot (about 10 s) to one.

import (
	"context"
	"errors"
	"net/rpc"
	"strings"
	"sync/atomic"
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
func loadDuring(t *testing.T, client *rpc.Client, callTimeout time.Duration, scenario string, fault func()) *loadStats {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan *loadStats)
	go func() { done <- runLoad(client, 32, callTimeout, 1, stop) }()
	time.Sleep(500 * time.Millisecond) // steady load before the fault
	fault()
	callWorks(t, client, 30*time.Second, scenario+": recovery")
	time.Sleep(500 * time.Millisecond) // steady load after recovery
	close(stop)
	st := <-done
	st.report(t, scenario)
	st.check(t, true)
	return st
}

func TestBrokerFaults(t *testing.T) {
	node := startPrivateNode(t)
	url := node.URL()
	queue := "faults"
	const callTimeout = 5 * time.Second

	faultServer(t, url, queue, faultServerOpts("fault-server", WithPrefetch(16))...)
	client, err := Dial(url, queue, faultClient("fault-client", WithCallTimeout(callTimeout))...)
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	callWorks(t, client, 10*time.Second, "first call")

	// Every scenario uses the same client and server: each must come back
	// by itself for the next one to pass.
	t.Run("stop_app", func(t *testing.T) {
		loadDuring(t, client, callTimeout, "broker stop_app/start_app, 32 callers", func() {
			node.StopApp(t)
			node.StartApp(t)
		})
	})
	t.Run("kill-9", func(t *testing.T) {
		loadDuring(t, client, callTimeout, "broker kill -9 and restart, 32 callers", func() {
			node.Kill(t)
			node.Restart(t)
		})
	})
	t.Run("close_connection-client", func(t *testing.T) {
		loadDuring(t, client, callTimeout, "client connection closed by the broker, 32 callers", func() {
			closeConnectionsNamed(t, node, "fault-client")
		})
	})
	t.Run("close_connection-server", func(t *testing.T) {
		loadDuring(t, client, callTimeout, "server connection closed by the broker, 32 callers", func() {
			closeConnectionsNamed(t, node, "fault-server")
		})
	})
	t.Run("blocked", func(t *testing.T) {
		testBlocked(t, node, client, callTimeout)
	})
	t.Run("after-all", func(t *testing.T) {
		callWorks(t, client, 10*time.Second, "the same client and server after every fault")
	})
}

// closeConnectionsNamed has the broker close the connections whose
// connection_name is name.
func closeConnectionsNamed(t *testing.T, node *privateNode, name string) {
	t.Helper()
	out := node.Ctl(t, "list_connections", "--no-table-headers", "pid", "client_properties")
	n := 0
	for _, line := range strings.Split(out, "\n") {
		// pid, then the client properties as an Erlang term holding
		// {"connection_name","name"}.
		f := strings.Fields(line)
		if len(f) >= 2 && strings.Contains(line, `{"connection_name","`+name+`"}`) {
			node.Ctl(t, "close_connection", f[0], "closed by the fault test")
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no connection named %q in:\n%s", name, out)
	}
}

// testBlocked raises a memory alarm: the broker blocks publishing
// connections, and calls must fail clearly within their timeout, never
// hang; once the alarm clears, calls work again.
func testBlocked(t *testing.T, node *privateNode, client *rpc.Client, callTimeout time.Duration) {
	node.Ctl(t, "set_vm_memory_high_watermark", "0.0000001")
	cleared := false
	clear := func() {
		if !cleared {
			node.Ctl(t, "set_vm_memory_high_watermark", "0.4")
			cleared = true
		}
	}
	t.Cleanup(clear)
	var blocked, other atomic.Int64
	deadline := time.Now().Add(15 * time.Second)
	for blocked.Load() == 0 && time.Now().Before(deadline) {
		var r int
		start := time.Now()
		err := client.Call("Arith.Multiply", &Args{1, 1}, &r)
		if d := time.Since(start); d > callTimeout+5*time.Second {
			t.Fatalf("a call on a blocked connection took %v; want at most about %v", d, callTimeout)
		}
		switch {
		case errors.Is(Cause(err), ErrBlocked):
			blocked.Add(1)
		case err != nil:
			other.Add(1)
		}
	}
	if blocked.Load() == 0 {
		t.Fatalf("no call failed with ErrBlocked within 15s of the alarm (%d other failures)", other.Load())
	}
	clear()
	callWorks(t, client, 30*time.Second, "after the alarm cleared")
	t.Logf("blocked: %d calls failed with ErrBlocked, %d otherwise, none hung", blocked.Load(), other.Load())
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
