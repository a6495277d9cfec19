package amqprpc

// TLS and mutual TLS on private nodes with a TLS listener (docs/SECURITY.md):
// amqps:// URLs with WithTLSConfig work for Dial and Serve, and every way TLS
// can go wrong fails the connection at once with an error that says it is a
// certificate problem.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
					require.NoError(t, err, "Dial(%s)", url)
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
			require.NoError(t, err, "Dial(%s)", u)
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
			require.NoError(t, err, "Dial(%s)", url)
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
			require.NoError(t, err, "Dial(%s) with a client certificate", url)
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
