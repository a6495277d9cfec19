package amqprpc

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

	"github.com/amqprpc/amqprpc/transport"
)

// Bounds on a dialed connection.
const (
	// dialTimeout bounds the TCP connect, TLS and AMQP handshakes of one URL.
	dialTimeout = 10 * time.Second
	// DefaultHeartbeat is the AMQP heartbeat interval unless [WithHeartbeat]
	// says otherwise.
	DefaultHeartbeat = 5 * time.Second
	// writeTimeout bounds every write to the socket, so a peer that stops
	// reading (a black-holed network, a blocked broker) fails the
	// connection instead of blocking a publisher forever.
	writeTimeout = 15 * time.Second
)

// dialer opens connections to a broker, trying each of its URLs in turn.
// After a success it starts the next round at the URL that worked.
type dialer struct {
	urls      []string
	tlsConfig *tls.Config   // for amqps:// URLs; nil means the system roots
	heartbeat time.Duration // 0 means DefaultHeartbeat
	timeout   time.Duration // 0 means dialTimeout; tests shorten it
	name      string        // the connection_name shown by the broker

	mu   sync.Mutex // guards next
	next int        // index of the URL to try first
}

// Dial connects to the first URL that accepts, in turn from the last good one.
// Errors name each URL with its password redacted. Cancelling ctx abandons
// the attempt at once, mid-handshake included.
func (d *dialer) Dial(ctx context.Context) (*amqp.Connection, error) {
	if len(d.urls) == 0 {
		return nil, transport.ErrNoURL
	}
	d.mu.Lock()
	first := d.next
	d.mu.Unlock()
	var errs []error
	for i := range d.urls {
		idx := (first + i) % len(d.urls)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("amqprpc: connect: %w", err)
		}
		conn, err := d.dialOne(ctx, d.urls[idx])
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

func (d *dialer) dialOne(ctx context.Context, rawURL string) (*amqp.Connection, error) {
	if _, err := amqp.ParseURI(rawURL); err != nil {
		// The parser's error quotes the URL; keep only our redacted form.
		return nil, &DialError{URL: RedactURL(rawURL), text: "invalid AMQP URL (want amqp://user:password@host:port/vhost; reserved characters in the user or password must be percent-encoded)"}
	}
	timeout := orDefault(d.timeout, dialTimeout)
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
	if d.tlsConfig != nil {
		tlsConfig = d.tlsConfig.Clone()
	}
	cfg := amqp.Config{
		Heartbeat:       orDefault(d.heartbeat, DefaultHeartbeat),
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
	if d.name != "" {
		cfg.Properties["connection_name"] = d.name
	}
	conn, err := amqp.DialConfig(rawURL, cfg)
	if err != nil && ctx.Err() != nil {
		// Cancelled: the connection was closed under the handshake.
		return nil, &DialError{URL: RedactURL(rawURL), text: ctx.Err().Error(), err: ctx.Err()}
	}
	if err != nil {
		text := scrub(err.Error(), rawURL)
		if hint := tlsHangUpHint(rawURL, d.tlsConfig, err); hint != "" {
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
// stands until it is cleared: Write does not move it. until holds both
// facts in one word, so that Write's check and its move cannot interleave
// with a deadline set from outside: mu serializes every change.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	mu      sync.Mutex   // serializes changes of the deadline and of until
	until   atomic.Int64 // our write deadline in Unix nanoseconds; 0: none; pinned: set from outside
}

// pinned marks a deadline set from outside in deadlineConn.until.
const pinned = -1

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pin(t)
	return c.Conn.SetDeadline(t)
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pin(t)
	return c.Conn.SetWriteDeadline(t)
}

// pin records a deadline set from outside; c.mu must be held.
func (c *deadlineConn) pin(t time.Time) {
	if t.IsZero() {
		c.until.Store(0)
		return
	}
	c.until.Store(pinned)
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	if c.due(time.Now()) {
		c.mu.Lock()
		now := time.Now()
		if c.due(now) {
			until := now.Add(c.timeout)
			if err := c.Conn.SetWriteDeadline(until); err != nil {
				c.mu.Unlock()
				return 0, err
			}
			c.until.Store(until.UnixNano())
		}
		c.mu.Unlock()
	}
	return c.Conn.Write(b)
}

// due reports whether our deadline must move before a write at now.
func (c *deadlineConn) due(now time.Time) bool {
	u := c.until.Load()
	return u != pinned && u-now.UnixNano() < int64(c.timeout/2)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
