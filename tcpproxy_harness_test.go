package amqprpc

// These tests prove the TCP proxy of the fault tests (tcpproxy_test.go):
// pausing, cutting and closing, on an echo server and on AMQP connections to
// the test broker.

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

func TestTCPProxy(t *testing.T) {
	echo := startEchoServer(t)
	p := newTCPProxy(t, echo)
	c := dialProxy(t, p)

	roundTrip(t, c, "ping")

	p.Pause()
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatalf("Write while paused = %v", err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read while paused = %d, %v; want a timeout", n, err)
	}
	p.Resume()
	expectRead(t, c, "held")
	roundTrip(t, c, "after resume")

	p.Cut()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 16)); err == nil {
		t.Fatalf("Read after Cut = %d, nil; want an error", n)
	}
	brokertest.WaitFor(t, 5*time.Second, "proxy drops cut connections", func() bool { return p.Conns() == 0 })
	roundTrip(t, dialProxy(t, p), "new connection after cut")
	if got := p.Accepted(); got != 2 {
		t.Errorf("Accepted() = %d after two connections; want 2", got)
	}

	p.Close()
	p.Close() // idempotent
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Errorf("Dial(%s) after Close = nil error; want one", p.Addr())
	}
}

// TestTCPProxyDirections pauses one direction at a time: what the client
// writes while only the echo's answers are held reaches the echo server,
// and its answer arrives once that direction resumes, even while the
// client's writes are held in turn.
func TestTCPProxyDirections(t *testing.T) {
	echo := startEchoServer(t)
	p := newTCPProxy(t, echo)
	p.SetReadBuffer(64 << 10)
	c := dialProxy(t, p)
	roundTrip(t, c, "ping")

	p.PauseDownstream()
	mustWrite(t, c, "down")
	expectNothing(t, c, "while downstream is paused")
	p.PauseUpstream()
	mustWrite(t, c, "up")
	p.ResumeDownstream()
	expectRead(t, c, "down")
	expectNothing(t, c, "while upstream is paused")
	p.Resume()
	expectRead(t, c, "up")
	roundTrip(t, c, "after resume")
}

func TestTCPProxyAMQP(t *testing.T) {
	url := brokertest.URL(t)
	u, err := amqp.ParseURI(url)
	if err != nil {
		t.Fatalf("ParseURI = %v", err)
	}
	p := newTCPProxy(t, net.JoinHostPort(u.Host, strconv.Itoa(u.Port)))
	u.Host, u.Port = "127.0.0.1", p.Port()
	viaProxy := u.String()

	dial := func(t *testing.T) <-chan *amqp.Error {
		conn, err := amqp.DialConfig(viaProxy, amqp.Config{Heartbeat: time.Second})
		if err != nil {
			t.Fatalf("DialConfig(heartbeat 1s) via proxy = %v", err)
		}
		t.Cleanup(func() { conn.Close() })
		// amqp091-go arms its heartbeat deadline only once a frame has
		// arrived after the handshake: open a channel first.
		if _, err := conn.Channel(); err != nil {
			t.Fatalf("Channel = %v", err)
		}
		return conn.NotifyClose(make(chan *amqp.Error, 1))
	}

	t.Run("pause", func(t *testing.T) {
		closed := dial(t)
		begin := time.Now()
		p.Pause()
		defer p.Resume()
		if err := closeReason(t, closed, 6*time.Second); err == nil {
			t.Errorf("close through paused proxy = nil; want a heartbeat error")
		}
		t.Logf("heartbeat 1s connection closed %v after Pause", time.Since(begin).Round(time.Millisecond))
	})

	t.Run("cut", func(t *testing.T) {
		closed := dial(t)
		p.Cut()
		if err := closeReason(t, closed, 5*time.Second); err == nil {
			t.Errorf("close after Cut = nil; want an error")
		}
	})
}

// startEchoServer serves an echo on 127.0.0.1 until the test ends, and
// returns its address.
func startEchoServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen = %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex // guards conns
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func dialProxy(t testing.TB, p *tcpProxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("Dial(%s) = %v", p.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg to c and expects it back.
func roundTrip(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("Write(%q) = %v", msg, err)
	}
	expectRead(t, c, msg)
}

// expectRead reads len(want) bytes from c within 5 s.
func expectRead(t testing.TB, c net.Conn, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Fatalf("Read = %q, %v; want %q", got, err, want)
	}
}

// mustWrite writes msg to c.
func mustWrite(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("Write(%q) = %v", msg, err)
	}
}

// expectNothing expects no byte from c within 300 ms.
func expectNothing(t testing.TB, c net.Conn, when string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read %s = %d, %v; want a timeout", when, n, err)
	}
}
