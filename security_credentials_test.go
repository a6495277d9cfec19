package amqprpc

// Credentials (docs/SECURITY.md): the password of a URL never reaches an
// error or a log line, whatever fails and on every path.

import (
	"fmt"
	"net"
	"net/rpc"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

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
	require.NoError(t, err, "net.Listen")
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
			require.NoError(t, err, "Dial as %s", user)
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
		require.NoError(t, err, "amqp.Dial")
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
			require.NoError(t, err, "Dial")
			defer client.Close()
			clients = append(clients, client)
		}
		conn, err := amqp.Dial(secURL("amqp", "leaky-escaped", secPasswordEscaped, plain, ""))
		require.NoError(t, err, "amqp.Dial")
		defer conn.Close()
		cc, err := NewClientCodec(conn, "creds", append(asClient(opts), WithCallTimeout(3*time.Second))...)
		require.NoError(t, err, "NewClientCodec")
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
