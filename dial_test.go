package amqprpc

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc/internal/brokertest"
	"github.com/amqprpc/amqprpc/transport"
)

func TestDialErrorsNameURLWithoutPassword(t *testing.T) {
	const secret = "Sup3rS3cret"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // now nothing listens there
	d := &dialer{urls: []string{
		"amqp://user:" + secret + "@" + addr + "/",
		"amqp://user:" + secret + "@[::1:bad/",
		"http://user:" + secret + "@" + addr + "/",
	}, timeout: 2 * time.Second}
	_, err = d.Dial(context.Background())
	if err == nil {
		t.Fatal("Dial = nil; want an error")
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("Dial error %q contains the password", err)
	}
	if !strings.Contains(err.Error(), "amqp://user:xxxxx@"+addr) {
		t.Fatalf("Dial error %q does not name the redacted URL", err)
	}
	var de *DialError
	if !errors.As(err, &de) {
		t.Fatalf("Dial error %T is no *DialError", err)
	}
}

func TestDialStopsWhenCancelled(t *testing.T) {
	// A listener that accepts and never speaks AMQP: the handshake hangs
	// until the context is cancelled.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	d := &dialer{urls: []string{"amqp://guest:guest@" + l.Addr().String() + "/"}, timeout: time.Minute}
	done := make(chan error, 1)
	go func() {
		_, err := d.Dial(ctx)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the handshake start; nothing to wait on
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Dial = nil; want an error after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Dial did not return within 5s of cancel")
	}
}

func TestDialNeedsAURL(t *testing.T) {
	if _, err := (&dialer{}).Dial(context.Background()); !errors.Is(err, transport.ErrNoURL) {
		t.Fatalf("Dial with no URL = %v; want ErrNoURL", err)
	}
}

func TestDeadlineConnKeepsADeadlineAhead(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	dc := &deadlineConn{Conn: a, timeout: 200 * time.Millisecond}
	// Nobody reads b: a write must fail by its deadline, not block.
	done := make(chan error, 1)
	go func() {
		_, err := dc.Write([]byte("x"))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Write to a peer that never reads = nil; want a timeout")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Write to a peer that never reads blocked past its deadline")
	}
	// A deadline set from outside stands; clearing it re-arms ours.
	if err := dc.SetDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if dc.until.Load() != pinned {
		t.Fatal("SetDeadline did not pin the deadline")
	}
	if err := dc.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := dc.Write([]byte("y"))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Write after clearing the deadline = nil; want a timeout")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Write after the deadline was cleared blocked: ours was not re-armed")
	}
}

// TestDialContextBoundsTheFirstConnection: a broker that accepts the TCP
// connection and then says nothing holds Dial for its full dial timeout;
// DialContext gives up when its context ends.
func TestDialContextBoundsTheFirstConnection(t *testing.T) {
	u, err := url.Parse(brokertest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, u.Host)
	proxy.Pause()
	u.Host = proxy.Addr()
	viaProxy := u.String()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	client, err := DialContext(ctx, viaProxy, "dialcontext-test")
	took := time.Since(start)
	if err == nil {
		client.Close()
		t.Fatal("DialContext to a silent broker = nil error; want the context's")
	}
	if !errors.Is(err, context.DeadlineExceeded) || took > 3*time.Second {
		t.Fatalf("DialContext to a silent broker = %v after %v; want DeadlineExceeded after 300ms", err, took)
	}
	t.Logf("DialContext gave up after %v: %v", took.Round(time.Millisecond), err)

	proxy.Resume()
	client, err = DialContext(context.Background(), viaProxy, "dialcontext-test")
	if err != nil {
		t.Fatalf("DialContext once the broker answers = %v", err)
	}
	client.Close()
}
