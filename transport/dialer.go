package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Defaults of a Dialer's zero fields.
const (
	DefaultDialTimeout  = 10 * time.Second
	DefaultHeartbeat    = 5 * time.Second
	DefaultWriteTimeout = 15 * time.Second
)

// Connector opens connections to a broker. *Dialer is the one the library
// uses; tests supply others.
type Connector interface {
	Dial(ctx context.Context) (*amqp.Connection, error)
}

// ErrNoURL is returned by a Dialer that was given no broker URL.
var ErrNoURL = errors.New("amqprpc: no broker URL")

// Dialer opens connections to a broker, trying each of its URLs in turn.
// After a success it starts the next round at the URL that worked.
type Dialer struct {
	URLs      []string
	TLSConfig *tls.Config   // for amqps:// URLs; nil means the system roots
	Heartbeat time.Duration // 0 means DefaultHeartbeat
	// Timeout bounds the TCP connect, TLS and AMQP handshakes of one URL;
	// 0 means DefaultDialTimeout.
	Timeout time.Duration
	// WriteTimeout bounds every write to the socket, so a peer that stops
	// reading (a black-holed network, a blocked broker) fails the connection
	// instead of blocking a publisher forever; 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	Name         string // the connection_name shown by the broker

	mu   sync.Mutex // guards next
	next int        // index of the URL to try first
}

// Dial connects to the first URL that accepts, in turn from the last good one.
// Errors name each URL with its password redacted. Cancelling ctx abandons
// the attempt at once, mid-handshake included.
func (d *Dialer) Dial(ctx context.Context) (*amqp.Connection, error) {
	if len(d.URLs) == 0 {
		return nil, ErrNoURL
	}
	d.mu.Lock()
	first := d.next
	d.mu.Unlock()
	var errs []error
	for i := range d.URLs {
		idx := (first + i) % len(d.URLs)
		if err := ctx.Err(); err != nil {
			return nil, errorf("connect: %w", err)
		}
		conn, err := d.dialOne(ctx, d.URLs[idx])
		if err == nil {
			d.mu.Lock()
			d.next = idx
			d.mu.Unlock()
			return conn, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, errors.Join(errs...)
}

func (d *Dialer) dialOne(ctx context.Context, rawURL string) (*amqp.Connection, error) {
	if _, err := amqp.ParseURI(rawURL); err != nil {
		// The parser's error quotes the URL; keep only our redacted form.
		return nil, &DialError{URL: RedactURL(rawURL), text: "invalid AMQP URL (want amqp://user:password@host:port/vhost; reserved characters in the user or password must be percent-encoded)"}
	}
	timeout := orDefault(d.Timeout, DefaultDialTimeout)
	writeTimeout := orDefault(d.WriteTimeout, DefaultWriteTimeout)
	var stops []func() bool
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	// amqp091-go writes the URL's host into the ServerName of the config it
	// is given: give it a copy, so that every URL is checked against its
	// own host and a config shared by several dialers is never written.
	var tlsConfig *tls.Config
	if d.TLSConfig != nil {
		tlsConfig = d.TLSConfig.Clone()
	}
	cfg := amqp.Config{
		Heartbeat:       orDefault(d.Heartbeat, DefaultHeartbeat),
		TLSClientConfig: tlsConfig,
		Locale:          "en_US",
		Properties:      amqp.Table{"product": "amqprpc"},
		Dial: func(network, addr string) (net.Conn, error) {
			nd := net.Dialer{Timeout: timeout}
			c, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			dc := &deadlineConn{Conn: c, timeout: writeTimeout}
			// This deadline bounds the TLS and AMQP handshakes; amqp091-go
			// clears it once the connection is open.
			if err := dc.SetDeadline(time.Now().Add(timeout)); err != nil {
				c.Close()
				return nil, err
			}
			stops = append(stops, context.AfterFunc(ctx, func() { c.Close() }))
			return dc, nil
		},
	}
	if d.Name != "" {
		cfg.Properties["connection_name"] = d.Name
	}
	conn, err := amqp.DialConfig(rawURL, cfg)
	if err != nil {
		text := scrub(err.Error(), rawURL)
		if hint := tlsHangUpHint(rawURL, d.TLSConfig, err); hint != "" {
			text += " (" + hint + ")"
		}
		return nil, &DialError{URL: RedactURL(rawURL), text: text, err: err}
	}
	return conn, nil
}

// tlsHangUpHint explains a TLS connection the broker closed without saying
// why. With TLS 1.3 a broker judges the client's certificate after the
// client has finished its side of the handshake, and its alert often loses
// the race with the client's first write: the client then sees only a reset.
func tlsHangUpHint(rawURL string, c *tls.Config, err error) string {
	if !strings.HasPrefix(strings.ToLower(rawURL), "amqps://") {
		return ""
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) || strings.Contains(err.Error(), "certificate") {
		return "" // the error already says what is wrong
	}
	hungUp := false
	for _, e := range []error{syscall.ECONNRESET, syscall.EPIPE, net.ErrClosed, io.EOF, io.ErrUnexpectedEOF, amqp.ErrClosed} {
		hungUp = hungUp || errors.Is(err, e)
	}
	if !hungUp {
		return ""
	}
	if c == nil || (len(c.Certificates) == 0 && c.GetClientCertificate == nil) {
		return "the broker hung up during or right after the TLS handshake: it may require a client certificate, and none was given in WithTLSConfig"
	}
	return "the broker hung up during or right after the TLS handshake: it may not accept the client certificate given in WithTLSConfig"
}

// DialError reports a failure to connect to one broker URL. Its text never
// holds the URL's password.
type DialError struct {
	URL  string // the URL with its password redacted
	text string // the cause, scrubbed of the password
	err  error
}

// Error returns "amqprpc: connect to URL: cause".
func (e *DialError) Error() string { return "amqprpc: connect to " + e.URL + ": " + e.text }

// Unwrap returns the underlying error, so errors.As finds, say, an
// x509.UnknownAuthorityError or an *amqp.Error.
func (e *DialError) Unwrap() error { return e.err }

// deadlineConn keeps a write deadline ahead of every write, so that no write
// to a broker can block longer than timeout. Setting a deadline costs more
// than checking the clock, so it is moved only once less than half of
// timeout is left: every write gets between timeout/2 and timeout.
//
// A deadline set from outside (amqp091-go's handshake and CloseDeadline)
// stands until it is cleared: Write does not move it.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	until   atomic.Int64 // the write deadline, in Unix nanoseconds; 0: none
	pinned  atomic.Bool  // the deadline was set from outside
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.pin(t)
	return c.Conn.SetDeadline(t)
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.pin(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *deadlineConn) pin(t time.Time) {
	if t.IsZero() {
		c.pinned.Store(false)
		c.until.Store(0)
		return
	}
	c.pinned.Store(true)
	c.until.Store(t.UnixNano())
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	now := time.Now()
	if !c.pinned.Load() && c.until.Load()-now.UnixNano() < int64(c.timeout/2) {
		until := now.Add(c.timeout)
		if err := c.Conn.SetWriteDeadline(until); err != nil {
			return 0, err
		}
		c.until.Store(until.UnixNano())
	}
	return c.Conn.Write(b)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// errorf wraps err with context, as every error of this package does.
func errorf(format string, args ...any) error {
	return fmt.Errorf("amqprpc: "+format, args...)
}
