package amqprpc

// Security tests, a file per claim of docs/SECURITY.md: TLS and mutual TLS
// on a private node with a TLS listener (security_tls_test.go);
// least-privilege RabbitMQ permissions for clients and servers in both reply
// modes (security_permissions_test.go); credentials that never reach an
// error or a log line (security_credentials_test.go); a flood of hostile
// requests that neither grows the server's memory nor stops real calls, and
// body size limits (security_limits_test.go). The private nodes boot in
// parallel (about 10 s each); the flood runs alone on the shared broker,
// since it measures the heap of this process. This file holds what they
// share.

import (
	"bytes"
	"context"
	"log/slog"
	"net/rpc"
	"sync"
	"testing"
	"time"
)

// secDialAndServe tries Dial and Serve with url, both expected to fail at
// once, and returns their errors; either that hangs or succeeds fails the
// test.
func secDialAndServe(t *testing.T, url, queue string, opts ...Option) (dialErr, serveErr error) {
	t.Helper()
	within(t, 15*time.Second, "Dial", func() {
		var client *rpc.Client
		client, dialErr = Dial(url, queue, asClient(opts)...)
		if client != nil {
			client.Close()
		}
	})
	if dialErr == nil {
		t.Errorf("Dial(%s) = nil error; want a failure", url)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, rpc.NewServer(), url, queue, asServer(opts)...) }()
	select {
	case serveErr = <-done:
	case <-time.After(15 * time.Second):
		cancel()
		<-done
		t.Fatalf("Serve(%s) still running after 15s; want it to fail at once", url)
	}
	if serveErr == nil {
		t.Errorf("Serve(%s) = nil; want a failure", url)
	}
	return dialErr, serveErr
}

// secLog collects what a *slog.Logger writes, for any goroutine.
type secLog struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *secLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *secLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// logger returns a logger at debug level writing to l.
func (l *secLog) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
