package amqprpc

// Security tests, one per claim of docs/SECURITY.md: TLS and mutual TLS on a
// private node with a TLS listener; least-privilege RabbitMQ permissions for
// clients and servers in both reply modes; credentials that never reach an
// error or a log line; and a flood of hostile requests that neither grows the
// server's memory nor stops real calls. The private nodes boot in parallel
// (about 10 s each); the flood runs alone on the shared broker, since it
// measures the heap of this process.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/rpc"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// TestSecurityTLS: amqps:// URLs with WithTLSConfig work for Dial and Serve,
// and every way TLS can go wrong fails the connection at once with an error
// that says it is a certificate problem.
func TestSecurityTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	other := newTestPKI(t) // a CA the nodes do not trust, with its own client certificate

	t.Run("server-auth", func(t *testing.T) {
		t.Parallel()
		node := startPrivateNode(t, privateNodeTLS(pki.caPEM, pki.serverCertPEM, pki.serverKeyPEM, false))
		url := node.TLSURL()
		const queue = "tls-arith"

		t.Run("call", func(t *testing.T) {
			faultServer(t, url, queue, WithTLSConfig(pki.clientConfig(false)))
			for _, m := range replyModeOptions {
				t.Run(m.name, func(t *testing.T) {
					client, err := Dial(url, queue, WithTLSConfig(pki.clientConfig(false)), m.opt)
					if err != nil {
						t.Fatalf("Dial(%s) = %v", url, err)
					}
					defer client.Close()
					callWorks(t, client, 10*time.Second, "call over TLS")
				})
			}
			// The broker's own view: both connections are TLS.
			out := node.Ctl(t, "list_connections", "--no-table-headers", "ssl", "ssl_protocol")
			if !strings.Contains(out, "true") || strings.Contains(out, "false") {
				t.Errorf("list_connections ssl, ssl_protocol =\n%s\nwant only TLS connections", out)
			}
			t.Logf("connections (ssl, protocol):\n%s", out)
		})

		t.Run("localhost", func(t *testing.T) {
			// The other name in the certificate works too.
			u := strings.Replace(url, "127.0.0.1", "localhost", 1)
			client, err := Dial(u, queue, WithTLSConfig(pki.clientConfig(false)))
			if err != nil {
				t.Fatalf("Dial(%s) = %v", u, err)
			}
			client.Close()
		})

		plainPortTLS := strings.Replace(node.URL(), "amqp://", "amqps://", 1)
		for _, tc := range []struct {
			name  string
			url   string
			cfg   *tls.Config // nil: no WithTLSConfig, so the system roots
			check func(error) string
		}{
			{"system roots", url, nil, secWantX509[x509.UnknownAuthorityError]},
			{"wrong CA", url, other.clientConfig(false), secWantX509[x509.UnknownAuthorityError]},
			{"wrong server name", url, withServerName(pki.clientConfig(false), "wrong.example"), secWantX509[x509.HostnameError]},
			{"amqps to the plain port", plainPortTLS, pki.clientConfig(false), secWantText("tls")},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var opts []Option
				if tc.cfg != nil {
					opts = append(opts, WithTLSConfig(tc.cfg))
				}
				dialErr, serveErr := secDialAndServe(t, tc.url, queue, opts...)
				for what, err := range map[string]error{"Dial": dialErr, "Serve": serveErr} {
					if msg := tc.check(err); msg != "" {
						t.Errorf("%s(%s) = %v; %s", what, tc.url, err, msg)
					}
					var de *DialError
					if !errors.As(err, &de) || de.URL != RedactURL(tc.url) {
						t.Errorf("%s(%s) = %v; want a *DialError naming the URL", what, tc.url, err)
					}
					t.Logf("%s: %v", what, err)
				}
			})
		}

		t.Run("caller's tls.Config untouched", func(t *testing.T) {
			// One tls.Config is commonly shared by a client and a server, or
			// by every URL of WithURLs; the library must not write to it.
			cfg := pki.clientConfig(false)
			client, err := Dial(url, queue, WithTLSConfig(cfg))
			if err != nil {
				t.Fatalf("Dial(%s) = %v", url, err)
			}
			client.Close()
			if cfg.ServerName != "" {
				t.Errorf("after Dial, the tls.Config given to WithTLSConfig has ServerName %q; want it untouched (\"\")", cfg.ServerName)
			}
		})

		t.Run("each URL verified against its own host", func(t *testing.T) {
			// A cluster node that accepts TCP and then fails the handshake,
			// under a name the certificate of the good node does not hold.
			dead := secDeadListener(t, "127.0.0.2:0")
			first := "amqps://guest:guest@" + dead + "/"
			cfg := pki.clientConfig(false)
			client, err := Dial(first, queue, WithURLs(url), WithTLSConfig(cfg))
			if err != nil {
				t.Fatalf("Dial(%s, WithURLs(%s)) = %v; want the second URL to work", first, url, err)
			}
			client.Close()
		})
	})

	t.Run("mutual", func(t *testing.T) {
		t.Parallel()
		node := startPrivateNode(t, privateNodeTLS(pki.caPEM, pki.serverCertPEM, pki.serverKeyPEM, true))
		url := node.TLSURL()
		const queue = "mtls-arith"

		t.Run("client certificate", func(t *testing.T) {
			faultServer(t, url, queue, WithTLSConfig(pki.clientConfig(true)))
			client, err := Dial(url, queue, WithTLSConfig(pki.clientConfig(true)))
			if err != nil {
				t.Fatalf("Dial(%s) with a client certificate = %v", url, err)
			}
			defer client.Close()
			callWorks(t, client, 10*time.Second, "call over mutual TLS")
			out := node.Ctl(t, "list_connections", "--no-table-headers", "peer_cert_subject")
			if !strings.Contains(out, "amqprpc-test-client") {
				t.Errorf("list_connections peer_cert_subject =\n%s\nwant the client certificate's subject", out)
			}
		})

		for _, tc := range []struct {
			name string
			cfg  *tls.Config
		}{
			{"no client certificate", pki.clientConfig(false)},
			{"untrusted client certificate", &tls.Config{RootCAs: pki.roots, Certificates: []tls.Certificate{other.clientCert}, MinVersion: tls.VersionTLS12}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				// With TLS 1.3 the node judges the client's certificate after
				// the client's side of the handshake is done; its alert can
				// lose the race with the client's first write. Try often
				// enough to see both outcomes.
				const tries = 10
				unclear := map[string]int{}
				for range tries {
					dialErr, serveErr := secDialAndServe(t, url, queue, WithTLSConfig(tc.cfg))
					for what, err := range map[string]error{"Dial": dialErr, "Serve": serveErr} {
						if msg := secWantText("certificate")(err); msg != "" {
							if unclear[what]++; unclear[what] == 1 {
								t.Logf("%s(%s) = %v; %s", what, url, err, msg)
							}
						}
					}
				}
				for what, n := range unclear {
					t.Errorf("%s failed without saying \"certificate\" in %d of %d tries", what, n, tries)
				}
			})
		}
	})
}

// secWantX509 checks that err is a certificate problem that errors.As
// recognises as the x509 error E, and whose text says "certificate".
func secWantX509[E error](err error) string {
	var e E
	switch {
	case err == nil:
		return "want a certificate error"
	case !errors.As(err, &e):
		return fmt.Sprintf("want errors.As to find a %T", e)
	case !strings.Contains(err.Error(), "certificate"):
		return `want the text to say "certificate"`
	}
	return ""
}

// secWantText returns a check that err is not nil and its text holds want.
func secWantText(want string) func(error) string {
	return func(err error) string {
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), want) {
			return fmt.Sprintf("want an error saying %q", want)
		}
		return ""
	}
}

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

// secDeadListener listens on addr, closes every connection it accepts, and
// returns its address; it stops when the test ends. When addr cannot be
// bound it fails the test under CI and skips it otherwise.
func secDeadListener(t *testing.T, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and net.Listen(%q) = %v", addr, err)
		}
		t.Skipf("net.Listen(%q) = %v; set CI=1 to make this a failure", addr, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// secPerms are the configure, write and read patterns of a RabbitMQ user.
type secPerms struct{ configure, write, read string }

// The permissions docs/SECURITY.md gives. A server of the service queue
// "arith" needs secServerPerms("arith").
var (
	secClientPrivatePerms = secPerms{`^amq\.gen-.*`, `^amq\.default$`, `^amq\.gen-.*`}
	secClientDirectPerms  = secPerms{`^$`, `^amq\.default$`, `^$`}
)

func secServerPerms(queue string) secPerms {
	q := "^" + regexpQuote(queue) + "$"
	return secPerms{q, `^amq\.default$`, q}
}

// regexpQuote escapes the characters of a queue name that are special in a
// RabbitMQ permission pattern.
func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// secSetPerms sets user's permissions on vhost.
func secSetPerms(t *testing.T, node *privateNode, vhost, user string, p secPerms) {
	t.Helper()
	node.Ctl(t, "set_permissions", "-p", vhost, user, p.configure, p.write, p.read)
}

// TestSecurityPermissions proves the permission table of docs/SECURITY.md
// on a private node: users with exactly those permissions can serve and
// call in both reply modes, each permission is needed, a client without
// write permission gets ACCESS_REFUSED on its calls and recovers once it is
// granted, and a client cannot touch a service's request queue.
func TestSecurityPermissions(t *testing.T) {
	t.Parallel()
	node := startPrivateNode(t)
	const vhost, queue, pass = "rpc", "arith", "perm-test-pw"
	node.AddVhost(t, vhost)
	server := secServerPerms(queue)
	users := []struct {
		name  string
		perms secPerms
	}{
		{"arith-server", server},
		{"client-private", secClientPrivatePerms},
		{"client-direct", secClientDirectPerms},
		{"probe", secPerms{`^$`, `^$`, `^$`}}, // set per case below
	}
	for _, u := range users {
		node.AddUser(t, u.name, pass, vhost, u.perms.configure, u.perms.write, u.perms.read)
	}
	urlOf := func(user string) string {
		return fmt.Sprintf("amqp://%s:%s@127.0.0.1:%d/%s", user, pass, node.amqpPort, vhost)
	}
	clientUser := map[string]string{"private-queue": "client-private", "direct-reply-to": "client-direct"}
	fast := WithReconnectBackoff(50*time.Millisecond, 500*time.Millisecond)

	t.Run("with a server", func(t *testing.T) {
		faultServer(t, urlOf("arith-server"), queue, fast)

		t.Run("calls", func(t *testing.T) {
			for _, m := range replyModeOptions {
				t.Run(m.name, func(t *testing.T) {
					client, err := Dial(urlOf(clientUser[m.name]), queue, m.opt, fast)
					if err != nil {
						t.Fatalf("Dial as %s = %v", clientUser[m.name], err)
					}
					defer client.Close()
					callWorks(t, client, 10*time.Second, "call with least privileges")
					var q Quotient
					err = client.Call("Arith.Divide", &Args{1, 0}, &q)
					if err == nil || err.Error() != "divide by zero" {
						t.Errorf("Call(Arith.Divide, 1/0) = %v; want divide by zero", err)
					}
				})
			}
		})

		t.Run("no write permission: ACCESS_REFUSED, then recovery", func(t *testing.T) {
			for _, tc := range []struct {
				name    string
				granted secPerms
				opt     ClientOption
				borrow  bool // NewClientCodec on a connection of the test's own
			}{
				{"private-queue", secClientPrivatePerms, nil, false},
				{"direct-reply-to", secClientDirectPerms, WithDirectReplyTo(), false},
				{"NewClientCodec", secClientPrivatePerms, nil, true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					secAccessRefused(t, node, vhost, urlOf("probe"), queue, tc.granted, tc.opt, tc.borrow)
				})
			}
		})

		t.Run("clients cannot touch the request queue", func(t *testing.T) {
			for _, user := range []string{"client-private", "client-direct"} {
				conn, err := amqp.Dial(urlOf(user))
				if err != nil {
					t.Fatalf("amqp.Dial as %s = %v", user, err)
				}
				for _, op := range []struct {
					name string
					do   func(ch *amqp.Channel) error
				}{
					{"Consume", func(ch *amqp.Channel) error {
						_, err := ch.Consume(queue, "", false, false, false, false, nil)
						return err
					}},
					{"Get", func(ch *amqp.Channel) error { _, _, err := ch.Get(queue, false); return err }},
					{"QueuePurge", func(ch *amqp.Channel) error { _, err := ch.QueuePurge(queue, false); return err }},
					{"QueueDelete", func(ch *amqp.Channel) error { _, err := ch.QueueDelete(queue, false, false, false); return err }},
					{"QueueDeclare", func(ch *amqp.Channel) error {
						_, err := ch.QueueDeclare(queue, true, false, false, false, nil)
						return err
					}},
				} {
					ch, err := conn.Channel()
					if err != nil {
						t.Fatalf("Channel = %v", err)
					}
					err = op.do(ch)
					var ae *amqp.Error
					if !errors.As(err, &ae) || ae.Code != amqp.AccessRefused {
						t.Errorf("%s(%q) as %s = %v; want 403 ACCESS_REFUSED", op.name, queue, user, err)
					}
					ch.Close()
				}
				conn.Close()
			}
			// Nor can a server reach another service's queue.
			conn, err := amqp.Dial(urlOf("arith-server"))
			if err != nil {
				t.Fatalf("amqp.Dial as arith-server = %v", err)
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				t.Fatalf("Channel = %v", err)
			}
			_, err = ch.Consume("billing", "", false, false, false, false, nil)
			var ae *amqp.Error
			if !errors.As(err, &ae) || ae.Code != amqp.AccessRefused {
				t.Errorf("Consume(billing) as arith-server = %v; want 403 ACCESS_REFUSED", err)
			}
		})
	})

	t.Run("timeout inspects the queue", func(t *testing.T) {
		// No server any more: the queue exists without a consumer. A call
		// times out, and the client's passive declare, which needs no
		// permission, says why.
		for _, m := range replyModeOptions {
			t.Run(m.name, func(t *testing.T) {
				client, err := Dial(urlOf(clientUser[m.name]), queue, m.opt, WithCallTimeout(time.Second))
				if err != nil {
					t.Fatalf("Dial = %v", err)
				}
				defer client.Close()
				var r int
				err = client.Call("Arith.Multiply", &Args{2, 3}, &r)
				if !errors.Is(Cause(err), ErrTimeout) || !strings.Contains(err.Error(), "the queue has no consumer") {
					t.Errorf("Call with no server = %v; want ErrTimeout saying the queue has no consumer", err)
				}
			})
		}
	})

	t.Run("each permission is needed", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			perms secPerms
			run   func(t *testing.T, url string) error
			want  string
		}{
			{"server without configure", secPerms{`^$`, server.write, server.read}, secServeErr(queue), "declare classic queue"},
			{"server without read", secPerms{server.configure, server.write, `^$`}, secServeErr(queue), "consume"},
			{"client without configure", secPerms{`^$`, secClientPrivatePerms.write, secClientPrivatePerms.read}, secDialErr(queue), "declare reply queue"},
			{"client without read", secPerms{secClientPrivatePerms.configure, secClientPrivatePerms.write, `^$`}, secDialErr(queue), "consume replies"},
			{"server without write", secPerms{server.configure, `^$`, server.read}, func(t *testing.T, url string) error {
				return secServerCannotReply(t, url, urlOf("client-private"), queue)
			}, "access to exchange 'amq.default'"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				secSetPerms(t, node, vhost, "probe", tc.perms)
				err := tc.run(t, urlOf("probe"))
				if err == nil || !strings.Contains(err.Error(), "ACCESS_REFUSED") || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("with %+v: %v; want ACCESS_REFUSED from %q", tc.perms, err, tc.want)
				}
				t.Logf("%v", err)
			})
		}
	})
}

// secServeErr returns a run that starts Serve, expecting it to fail.
func secServeErr(queue string) func(t *testing.T, url string) error {
	return func(t *testing.T, url string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		return Serve(ctx, rpc.NewServer(), url, queue)
	}
}

// secDialErr returns a run that dials, expecting it to fail.
func secDialErr(queue string) func(t *testing.T, url string) error {
	return func(t *testing.T, url string) error {
		client, err := Dial(url, queue)
		if err == nil {
			client.Close()
		}
		return err
	}
}

// secServerCannotReply serves at serverURL, whose user may not publish,
// makes one call through clientURL, and returns the error the server logged
// on its reply; the call must fail within its timeout.
func secServerCannotReply(t *testing.T, serverURL, clientURL, queue string) error {
	var logs secLog
	faultServer(t, serverURL, queue, WithLogger(logs.logger()), WithReconnectBackoff(50*time.Millisecond, 500*time.Millisecond))
	client, err := Dial(clientURL, queue, WithCallTimeout(2*time.Second))
	if err != nil {
		t.Fatalf("Dial = %v", err)
	}
	defer client.Close()
	var r int
	within(t, 6*time.Second, "a call to a server that may not reply", func() {
		err = client.Call("Arith.Multiply", &Args{2, 3}, &r)
	})
	if !errors.Is(Cause(err), ErrTimeout) {
		t.Errorf("Call to a server that may not reply = %v; want ErrTimeout", err)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "ACCESS_REFUSED") {
			return errors.New(line)
		}
	}
	return fmt.Errorf("no ACCESS_REFUSED in the server's log:\n%s", logs.String())
}

// secAccessRefused calls through a client whose user may not publish:
// every call fails promptly with ACCESS_REFUSED, and once the permission is
// granted the same *rpc.Client works.
func secAccessRefused(t *testing.T, node *privateNode, vhost, url, queue string, granted secPerms, opt ClientOption, borrow bool) {
	denied := granted
	denied.write = `^$`
	secSetPerms(t, node, vhost, "probe", denied)
	var logs secLog
	opts := []ClientOption{WithCallTimeout(5 * time.Second), WithLogger(logs.logger()), WithReconnectBackoff(50*time.Millisecond, 500*time.Millisecond)}
	if opt != nil {
		opts = append(opts, opt)
	}
	var client *rpc.Client
	if borrow {
		conn, err := amqp.Dial(url)
		if err != nil {
			t.Fatalf("amqp.Dial = %v", err)
		}
		defer conn.Close()
		cc, err := NewClientCodec(conn, queue, opts...)
		if err != nil {
			t.Fatalf("NewClientCodec = %v", err)
		}
		client = rpc.NewClientWithCodec(cc)
	} else {
		var err error
		if client, err = Dial(url, queue, opts...); err != nil {
			t.Fatalf("Dial = %v", err)
		}
	}
	defer client.Close()

	for i := range 3 {
		var r int
		var err error
		start := time.Now()
		within(t, 6*time.Second, "a call without write permission", func() {
			err = client.Call("Arith.Multiply", &Args{2, 3}, &r)
		})
		took := time.Since(start)
		switch {
		case err == nil:
			t.Fatalf("call %d without write permission = nil error", i+1)
		case !strings.Contains(err.Error(), "ACCESS_REFUSED"):
			t.Errorf("call %d without write permission = %v (after %v); want ACCESS_REFUSED", i+1, err, took)
		case !errors.Is(Cause(err), ErrConnectionLost):
			t.Errorf("call %d: Cause(%v) is not ErrConnectionLost", i+1, err)
		case took > 2*time.Second:
			t.Errorf("call %d without write permission took %v; want it to fail promptly", i+1, took)
		}
		t.Logf("call %d after %v: %v", i+1, took.Round(time.Millisecond), err)
	}
	secSetPerms(t, node, vhost, "probe", granted)
	callWorks(t, client, 10*time.Second, "the same client once write is granted")
	if !strings.Contains(logs.String(), "ACCESS_REFUSED") {
		t.Errorf("client log has no ACCESS_REFUSED:\n%s", logs.String())
	}
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

// Passwords the credential tests put in URLs: a plain one, and one full of
// characters that must be percent-encoded. Neither may appear anywhere.
const (
	secPasswordPlain   = "S3cr3t-Pa55w0rd!"
	secPasswordEscaped = "Pa55/w0rd@S3cr3t:%?#&+= x"
)

// secMarkers are substrings of both passwords; finding none of them in a
// text proves neither password, in any encoding that keeps letters, is in it.
var secMarkers = []string{"S3cr3t", "Pa55"}

// secURL builds scheme://user:password@host/vhost with the password
// percent-encoded as a URL needs.
func secURL(scheme, user, password, host, vhost string) string {
	u := url.URL{Scheme: scheme, User: url.UserPassword(user, password), Host: host, Path: "/" + vhost}
	return u.String()
}

// secNoLeak fails the test if any form of a password appears in err: its
// text, its %+v and %#v forms, and those of every error it wraps.
func secNoLeak(t *testing.T, what string, err error) {
	t.Helper()
	for _, e := range secErrTree(err) {
		for _, text := range []string{e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e), fmt.Sprintf("%v", e)} {
			if m := secFindSecret(text); m != "" {
				t.Errorf("%s: error %T holds the password (%q):\n%s", what, e, m, text)
			}
		}
	}
}

// secFindSecret returns the first password marker or form found in text.
func secFindSecret(text string) string {
	forms := slices.Clone(secMarkers)
	for _, pw := range []string{secPasswordPlain, secPasswordEscaped} {
		forms = append(forms, pw, url.QueryEscape(pw), url.PathEscape(pw), strings.TrimPrefix(url.UserPassword("", pw).String(), ":"))
	}
	for _, f := range forms {
		if strings.Contains(text, f) {
			return f
		}
	}
	return ""
}

// secErrTree returns err and every error it wraps, through both forms of
// Unwrap.
func secErrTree(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		if e == nil || len(out) > 64 {
			return
		}
		out = append(out, e)
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return out
}

// secClosedPort returns a port on 127.0.0.1 that nothing listens on.
func secClosedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen = %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// TestSecurityCredentials: no error value or log line of the library holds
// the password of a URL it was given, whatever fails (closed port, unknown
// vhost, wrong password, TLS, an unparsable URL, several URLs) and on every
// path (Dial, Serve, NewClientCodec, NewServerCodec), nor while a client and
// a server keep trying to reconnect to a node that went away; URLs in errors
// and logs show the user and host with the password replaced.
func TestSecurityCredentials(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	node := startPrivateNode(t, privateNodeTLS(pki.caPEM, pki.serverCertPEM, pki.serverKeyPEM, false))
	plain := "127.0.0.1:" + strconv.Itoa(node.amqpPort)
	tlsHost := "127.0.0.1:" + strconv.Itoa(node.tlsPort)
	closed := "127.0.0.1:" + strconv.Itoa(secClosedPort(t))
	users := map[string]string{"leaky-plain": secPasswordPlain, "leaky-escaped": secPasswordEscaped}
	for user, pw := range users {
		node.AddUser(t, user, pw, "/", ".*", ".*", ".*")
	}
	var logs secLog
	log := WithLogger(logs.logger())
	fast := WithReconnectBackoff(50*time.Millisecond, 300*time.Millisecond)

	t.Run("URLs are accepted", func(t *testing.T) {
		// The credentials are right: the failures below are the ones meant.
		for user, pw := range users {
			client, err := Dial(secURL("amqp", user, pw, plain, ""), "creds", log)
			if err != nil {
				t.Fatalf("Dial as %s = %v", user, err)
			}
			client.Close()
		}
	})

	t.Run("failures", func(t *testing.T) {
		for user, pw := range users {
			cases := []struct {
				name   string
				url    string
				opts   []Option
				redact []string // the redacted URLs the error must show
			}{
				{name: "closed port", url: secURL("amqp", user, pw, closed, "")},
				{name: "unknown vhost", url: secURL("amqp", user, pw, plain, "no-such-vhost")},
				{name: "wrong password", url: secURL("amqp", user, pw+"-wrong", plain, "")},
				{name: "unknown user", url: secURL("amqp", "nobody", pw, plain, "")},
				{name: "TLS unknown CA", url: secURL("amqps", user, pw, tlsHost, "")},
				{name: "TLS wrong name", url: secURL("amqps", user, pw, tlsHost, ""), opts: []Option{WithTLSConfig(withServerName(pki.clientConfig(false), "wrong.example"))}},
				{name: "TLS to the plain port", url: secURL("amqps", user, pw, plain, ""), opts: []Option{WithTLSConfig(pki.clientConfig(false))}},
				{name: "password not escaped", url: "amqp://" + user + ":" + pw + "@" + closed + "/"},
				{
					name: "two URLs", url: secURL("amqp", user, pw, closed, ""),
					opts:   []Option{WithURLs(secURL("amqp", user, pw, plain, "no-such-vhost"))},
					redact: []string{user + ":xxxxx@" + closed, user + ":xxxxx@" + plain + "/no-such-vhost"},
				},
			}
			for _, tc := range cases {
				t.Run(user+"/"+tc.name, func(t *testing.T) {
					t.Parallel() // a refused login takes RabbitMQ 3 s
					host := tc.url[strings.LastIndex(tc.url, "@")+1:]
					host = host[:strings.IndexAny(host+"/", "/")]
					u := user
					if tc.name == "unknown user" {
						u = "nobody"
					}
					if tc.redact == nil {
						tc.redact = []string{u + ":xxxxx@" + host}
					}
					opts := append([]Option{log, fast}, tc.opts...)
					dialErr, serveErr := secDialAndServe(t, tc.url, "creds", opts...)
					for what, err := range map[string]error{"Dial": dialErr, "Serve": serveErr} {
						secNoLeak(t, what+" "+tc.name, err)
						for _, r := range tc.redact {
							if err != nil && !strings.Contains(err.Error(), r) {
								t.Errorf("%s %s = %v; want it to show the URL as %q", what, tc.name, err, r)
							}
						}
					}
					t.Logf("%v", dialErr)
				})
			}
		}
	})

	t.Run("codecs on a connection", func(t *testing.T) {
		// The codecs never see a URL; what they report must not hold one
		// either. A vhost where the user may do nothing makes them fail.
		node.AddVhost(t, "locked")
		node.Ctl(t, "set_permissions", "-p", "locked", "leaky-escaped", "^$", "^$", "^$")
		conn, err := amqp.Dial(secURL("amqp", "leaky-escaped", secPasswordEscaped, plain, "locked"))
		if err != nil {
			t.Fatalf("amqp.Dial = %v", err)
		}
		defer conn.Close()
		if _, err := NewClientCodec(conn, "creds", log); err == nil {
			t.Errorf("NewClientCodec with no permission = nil error; want ACCESS_REFUSED")
		} else {
			secNoLeak(t, "NewClientCodec", err)
		}
		if _, err := NewServerCodec(conn, "creds", log); err == nil {
			t.Errorf("NewServerCodec with no permission = nil error; want ACCESS_REFUSED")
		} else {
			secNoLeak(t, "NewServerCodec", err)
		}
	})

	t.Run("node goes away", func(t *testing.T) {
		// Clients and servers, over plain AMQP and TLS, and a borrowed
		// connection, all connected; then the broker stops and they log
		// their reconnect attempts.
		opts := []Option{log, fast, WithHeartbeat(time.Second)}
		tlsOpts := append(slices.Clone(opts), WithTLSConfig(pki.clientConfig(false)))
		urlPlain := secURL("amqp", "leaky-plain", secPasswordPlain, plain, "")
		urlTLS := secURL("amqps", "leaky-escaped", secPasswordEscaped, tlsHost, "")
		faultServer(t, urlPlain, "creds", asServer(opts)...)
		faultServer(t, urlTLS, "creds", asServer(tlsOpts)...)
		var clients []*rpc.Client
		for _, c := range []struct {
			url  string
			opts []Option
		}{{urlPlain, opts}, {urlTLS, tlsOpts}} {
			client, err := Dial(c.url, "creds", append(asClient(c.opts), WithCallTimeout(3*time.Second))...)
			if err != nil {
				t.Fatalf("Dial = %v", err)
			}
			defer client.Close()
			clients = append(clients, client)
		}
		conn, err := amqp.Dial(secURL("amqp", "leaky-escaped", secPasswordEscaped, plain, ""))
		if err != nil {
			t.Fatalf("amqp.Dial = %v", err)
		}
		defer conn.Close()
		cc, err := NewClientCodec(conn, "creds", append(asClient(opts), WithCallTimeout(3*time.Second))...)
		if err != nil {
			t.Fatalf("NewClientCodec = %v", err)
		}
		borrowed := rpc.NewClientWithCodec(cc)
		defer borrowed.Close()
		clients = append(clients, borrowed)
		for _, c := range clients {
			callWorks(t, c, 10*time.Second, "before the node goes away")
		}

		node.StopApp(t)
		brokertest.WaitFor(t, 15*time.Second, "reconnect failures of clients and servers in the log", func() bool {
			l := logs.String()
			return strings.Count(l, "client reconnect failed") >= 4 && strings.Count(l, "server reconnect failed") >= 4
		})
		for i, c := range clients {
			var r int
			err := c.Call("Arith.Multiply", &Args{2, 3}, &r)
			if err == nil {
				t.Errorf("client %d: Call with the node away = nil error", i)
			}
			secNoLeak(t, fmt.Sprintf("client %d: Call with the node away", i), err)
		}
		node.StartApp(t)
		for _, c := range clients[:2] {
			callWorks(t, c, 20*time.Second, "after the node came back")
		}
		var r int
		err = borrowed.Call("Arith.Multiply", &Args{2, 3}, &r)
		if err == nil {
			t.Errorf("Call on a borrowed connection the broker closed = nil error")
		}
		secNoLeak(t, "Call on a closed borrowed connection", err)
		t.Logf("borrowed connection: %v", err)

		l := logs.String()
		for _, want := range []string{"leaky-plain:xxxxx@" + plain, "leaky-escaped:xxxxx@" + tlsHost} {
			if !strings.Contains(l, want) {
				t.Errorf("log holds no reconnect failure naming %q", want)
			}
		}
	})

	// Last, so that every path above has logged.
	if m := secFindSecret(logs.String()); m != "" {
		t.Errorf("the log holds the password (%q):\n%s", m, logs.String())
	}
	t.Logf("%d log lines, no password in them; a reconnect failure:\n%s", strings.Count(logs.String(), "\n"), secFirstLine(logs.String(), "reconnect failed"))
}

// secFirstLine returns the first line of text that holds s.
func secFirstLine(text, s string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

// secFloodSize is how many hostile requests TestSecurityFlood publishes;
// AMQPRPC_FLOOD overrides it.
const secFloodSize = 100_000

// secFloodNowhere is a reply_to no queue has: replies to it are dropped.
const secFloodNowhere = "amqprpc-flood-nowhere"

// TestSecurityFlood publishes a flood of hostile requests straight to a
// served queue (no reply_to, no type, garbage bodies, unknown methods and
// content types, bodies over the size limit) while a real client keeps
// calling. The server's heap after the flood must be what it was before,
// no goroutine may be left over, and every real call must be answered.
// It runs alone (not in parallel), as it measures this process's heap.
func TestSecurityFlood(t *testing.T) {
	n := secFloodSize
	if s := os.Getenv("AMQPRPC_FLOOD"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("AMQPRPC_FLOOD=%q: want a positive number", s)
		}
	}
	url := brokertest.URL(t)
	queue := testQueue(t)
	const maxBody = 64 << 10
	svc := faultServer(t, url, queue, WithMaxBodySize(maxBody))
	client := dial(t, queue, WithCallTimeout(time.Minute))
	callWorks(t, client, 10*time.Second, "before the flood")
	for i := range 200 { // buffers reach their steady size
		var r int
		if err := client.Call("Arith.Multiply", &Args{i, 2}, &r); err != nil {
			t.Fatalf("warm-up Call = %v", err)
		}
	}
	before := secMeasure()

	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("amqp.Dial = %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("Channel = %v", err)
	}
	t.Cleanup(func() { conn.Close() }) // ends the publisher should the test fail early
	begin := time.Now()
	published := make(chan error, 1)
	go func() { published <- secPublishFlood(ch, queue, n) }()

	// A real call every 100 ms until the flood is published and drained.
	type realCall struct {
		a    int
		call *rpc.Call
		took time.Duration // guarded by mu
	}
	var (
		mu      sync.Mutex // guards the took of every realCall
		calls   []*realCall
		wg      sync.WaitGroup
		peak    uint64
		pubTook time.Duration
	)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(3 * time.Minute)
	for i := 0; ; i++ {
		<-tick.C // pacing the real calls
		rc := &realCall{a: i}
		start := time.Now()
		rc.call = client.Go("Arith.Multiply", &Args{i, 2}, new(int), nil)
		calls = append(calls, rc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-rc.call.Done
			mu.Lock()
			rc.took = time.Since(start)
			mu.Unlock()
		}()
		if i%10 == 0 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
		if pubTook == 0 {
			select {
			case err := <-published:
				if err != nil {
					t.Fatalf("publishing the flood: %v", err)
				}
				pubTook = time.Since(begin)
			default:
			}
		}
		if pubTook != 0 && brokertest.Depth(conn, queue) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flood of %d not drained within 3 minutes (queue depth %d)", n, brokertest.Depth(conn, queue))
		}
	}
	drained := time.Since(begin)
	conn.Close()
	wg.Wait()
	var worst time.Duration
	failed := 0
	for _, rc := range calls {
		worst = max(worst, rc.took)
		if err := rc.call.Error; err != nil || *rc.call.Reply.(*int) != rc.a*2 {
			failed++
			if failed <= 3 {
				t.Errorf("real call %d during the flood = %v, %d; want %d", rc.a, err, *rc.call.Reply.(*int), rc.a*2)
			}
		}
	}
	callWorks(t, client, 10*time.Second, "after the flood")
	after := secMeasure()
	// The flood's own connection may take a moment to end its goroutines.
	for end := time.Now().Add(5 * time.Second); after.goroutines > before.goroutines+5 && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond) // polling for the goroutines to end
		after = secMeasure()
	}

	growth := int64(after.heap) - int64(before.heap)
	t.Logf("flood of %d hostile requests: published in %v (%.0f/s), drained in %v (%.0f/s); server ran %d Multiply",
		n, pubTook.Round(time.Millisecond), float64(n)/pubTook.Seconds(), drained.Round(time.Millisecond), float64(n)/drained.Seconds(), svc.calls.Load())
	t.Logf("real calls during the flood: %d, %d failed, slowest %v", len(calls), failed, worst.Round(time.Millisecond))
	t.Logf("heap after GC: %.1f MiB before, %.1f MiB after (%+.2f MiB); peak sampled without GC %.1f MiB; goroutines %d before, %d after",
		secMiB(before.heap), secMiB(after.heap), float64(growth)/(1<<20), secMiB(peak), before.goroutines, after.goroutines)
	if growth > 4<<20 {
		t.Errorf("heap grew by %.1f MiB over a flood of %d requests; want under 4 MiB", float64(growth)/(1<<20), n)
	}
	if after.goroutines > before.goroutines+5 {
		t.Errorf("goroutines: %d after the flood, %d before; want no more than 5 extra", after.goroutines, before.goroutines)
	}
}

// secMeasured is the heap after garbage collection and the goroutine count.
type secMeasured struct {
	heap       uint64
	goroutines int
}

func secMeasure() secMeasured {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return secMeasured{heap: ms.HeapAlloc, goroutines: runtime.NumGoroutine()}
}

func secMiB(b uint64) float64 { return float64(b) / (1 << 20) }

// secPublishFlood publishes n hostile requests to queue.
func secPublishFlood(ch *amqp.Channel, queue string, n int) error {
	rng := rand.New(rand.NewPCG(1, 2))
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = make([]byte, 1+rng.IntN(256))
		for j := range bodies[i] {
			bodies[i][j] = byte(rng.Uint32())
		}
	}
	big := bytes.Repeat([]byte{0xff}, 100<<10) // over the server's 64 KiB limit
	ctx := context.Background()
	for i := range n {
		body := bodies[i%len(bodies)]
		var msg amqp.Publishing
		switch {
		case i%500 == 499:
			msg = amqp.Publishing{Type: "Arith.Echo", ContentType: "application/x-gob", ReplyTo: secFloodNowhere, Body: big}
		case i%8 <= 1: // no type, no reply_to
			msg = amqp.Publishing{Body: body}
		case i%8 <= 3: // garbage gob, no reply_to
			msg = amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/x-gob", Body: body}
		case i%8 == 4: // garbage JSON, error reply to nowhere
			msg = amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json", ReplyTo: secFloodNowhere, CorrelationId: strconv.Itoa(i), Body: body}
		case i%8 == 5: // a good request nobody waits for
			msg = amqp.Publishing{Type: "Arith.Multiply", ContentType: "application/json", Body: []byte(`{"A":3,"B":4}`)}
		case i%8 == 6: // no such method
			msg = amqp.Publishing{Type: "No.Such", ContentType: "application/x-gob", ReplyTo: secFloodNowhere, Body: body}
		default: // unknown content type
			msg = amqp.Publishing{Type: "Arith.Multiply", ContentType: "text/x-weird", ReplyTo: secFloodNowhere, Body: body}
		}
		if err := ch.PublishWithContext(ctx, "", queue, false, false, msg); err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
	}
	return nil
}

// SecBlob makes replies of a size the caller chooses.
type SecBlob struct{}

// Make replies with n bytes.
func (SecBlob) Make(n *int, reply *[]byte) error {
	*reply = make([]byte, *n)
	return nil
}

// TestSecurityBodyLimits: WithMaxBodySize bounds requests at the server,
// replies at the server, and replies at the client; each excess fails only
// its call.
func TestSecurityBodyLimits(t *testing.T) {
	t.Parallel()
	url := brokertest.URL(t)
	const limit = 1 << 10
	serve := func(opts ...Option) string {
		queue := testQueue(t)
		srv := rpc.NewServer()
		if err := srv.RegisterName("Blob", SecBlob{}); err != nil {
			t.Fatalf("RegisterName = %v", err)
		}
		if err := srv.RegisterName("Arith", newArith("limits")); err != nil {
			t.Fatalf("RegisterName = %v", err)
		}
		server := brokertest.Serve(t, func(ctx context.Context) error { return Serve(ctx, srv, url, queue, asServer(opts)...) })
		brokertest.WaitForConsumers(t, url, queue, 1, server)
		return queue
	}
	limited, unlimited := serve(WithMaxBodySize(limit)), serve()

	for _, tc := range []struct {
		name   string
		queue  string
		client []ClientOption
		method string
		args   any
	}{
		{"request over the server's limit", limited, nil, "Arith.Echo", &Payload{Data: make([]byte, 2*limit)}},
		{"reply over the server's limit", limited, nil, "Blob.Make", secPtr(2 * limit)},
		{"reply over the client's limit", unlimited, []ClientOption{WithMaxBodySize(limit)}, "Blob.Make", secPtr(2 * limit)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := dial(t, tc.queue, tc.client...)
			var reply any = new([]byte)
			if tc.method == "Arith.Echo" {
				reply = new(Payload)
			}
			err := client.Call(tc.method, tc.args, reply)
			if !errors.Is(Cause(err), ErrBodyTooLarge) {
				t.Errorf("Call(%s) = %v; want ErrBodyTooLarge", tc.method, err)
			}
			var small []byte
			if err := client.Call("Blob.Make", secPtr(16), &small); err != nil || len(small) != 16 {
				t.Errorf("Call(Blob.Make, 16) after the refusal = %d bytes, %v; want 16, nil", len(small), err)
			}
		})
	}
}

func secPtr[T any](v T) *T { return &v }
