package amqprpc

// These tests prove the private nodes of the fault tests
// (privatenode_test.go): their TLS listener, mutual TLS, users and vhosts,
// stop_app, kill and stop. One node serves all the subtests of
// TestPrivateNode, as a boot takes about 10 s. The TCP proxy has its own:
// tcpproxy_harness_test.go.

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

func TestPrivateNode(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	n := startPrivateNode(t, privateNodeTLS(pki.caPEM, pki.serverCertPEM, pki.serverKeyPEM, false))
	const queue = "harness-durable"

	t.Run("connect", func(t *testing.T) {
		conn := privateNodeDial(t, n.URL())
		ch, err := conn.Channel()
		if err != nil {
			t.Fatalf("Channel = %v", err)
		}
		if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
			t.Fatalf("QueueDeclare(%q) = %v", queue, err)
		}
		if err := ch.Confirm(false); err != nil {
			t.Fatalf("Confirm = %v", err)
		}
		dc, err := ch.PublishWithDeferredConfirm("", queue, true, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent,
			Body:         []byte("survivor"),
		})
		if err != nil {
			t.Fatalf("Publish = %v", err)
		}
		if ok, err := dc.WaitContext(t.Context()); !ok || err != nil {
			t.Fatalf("publisher confirm = %v, %v; want true, nil", ok, err)
		}
		if got := brokertest.Depth(conn, queue); got != 1 {
			t.Fatalf("brokertest.Depth(%q) = %d; want 1", queue, got)
		}
	})

	t.Run("tls", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			cfg     *tls.Config
			wantErr string // "" for success
		}{
			{"test CA", pki.clientConfig(false), ""},
			{"test CA, name localhost", withServerName(pki.clientConfig(false), "localhost"), ""},
			{"system roots", &tls.Config{MinVersion: tls.VersionTLS12}, "unknown authority"},
			{"test CA, wrong name", withServerName(pki.clientConfig(false), "example.com"), "certificate is valid for"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				conn, err := amqp.DialTLS(n.TLSURL(), tc.cfg)
				if err == nil {
					conn.Close()
				}
				checkDialErr(t, "DialTLS", err, tc.wantErr)
			})
		}
	})

	t.Run("stop_app", func(t *testing.T) {
		conn := privateNodeDial(t, n.URL())
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		begin := time.Now()
		n.StopApp(t)
		stopped := time.Since(begin)
		// The node sends connection.close 320 and drops the socket at once;
		// amqp091-go reports the 320 or, when its close-ok write loses the
		// race, a 501 "connection reset by peer" (seen about once in 10).
		if err := closeReason(t, closed, 10*time.Second); err == nil || (err.Code != amqp.ConnectionForced && err.Code != amqp.FrameError) {
			t.Errorf("close after stop_app = %v; want code %d (CONNECTION_FORCED) or %d", err, amqp.ConnectionForced, amqp.FrameError)
		}
		if c, err := amqp.Dial(n.URL()); err == nil {
			c.Close()
			t.Errorf("Dial after stop_app = nil error; want one")
		}
		begin = time.Now()
		n.StartApp(t)
		t.Logf("stop_app took %v, start_app %v", stopped.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
		conn = privateNodeDial(t, n.URL())
		if got := brokertest.Depth(conn, queue); got != 1 {
			t.Errorf("brokertest.Depth(%q) after start_app = %d; want 1", queue, got)
		}
	})

	t.Run("kill", func(t *testing.T) {
		conn := privateNodeDial(t, n.URL())
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		oldPid := n.Pid(t)
		begin := time.Now()
		n.Kill(t)
		killed := time.Since(begin)
		if err := closeReason(t, closed, 10*time.Second); err == nil {
			t.Errorf("close after kill = nil; want an error")
		}
		if processAlive(oldPid) {
			t.Errorf("Erlang VM pid %d alive after Kill", oldPid)
		}
		if c, err := amqp.Dial(n.URL()); err == nil {
			c.Close()
			t.Errorf("Dial after kill = nil error; want one")
		}
		// Kill returns once every thread of the VM is gone, and with them
		// its sockets, so a restart at once finds its ports free.
		for _, port := range []int{n.amqpPort, n.tlsPort, n.distPort} {
			if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second); err == nil {
				c.Close()
				t.Errorf("port %d accepts connections right after Kill; want it closed", port)
			}
		}
		begin = time.Now()
		n.Restart(t)
		t.Logf("kill took %v, restart until AMQP answers %v", killed.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
		conn = privateNodeDial(t, n.URL())
		if got := brokertest.Depth(conn, queue); got != 1 {
			t.Errorf("brokertest.Depth(%q) after kill and restart = %d; want 1 (durable queue, persistent message)", queue, got)
		}
		// The TLS listener is back too.
		tconn, err := amqp.DialTLS(n.TLSURL(), pki.clientConfig(false))
		if err != nil {
			t.Fatalf("DialTLS after restart = %v", err)
		}
		tconn.Close()
	})

	t.Run("users", func(t *testing.T) {
		const (
			vhost = "narrow"
			user  = "narrow-user"
			pass  = "s3cret-pw-7d1f"
		)
		n.AddVhost(t, vhost)
		n.AddUser(t, user, pass, vhost, "^narrow-", `^(narrow-.*|amq\.default)$`, "^narrow-")
		url := fmt.Sprintf("amqp://%s:%s@127.0.0.1:%d/%s", user, pass, n.amqpPort, vhost)

		conn := privateNodeDial(t, url)
		ch, err := conn.Channel()
		if err != nil {
			t.Fatalf("Channel = %v", err)
		}
		if _, err := ch.QueueDeclare("narrow-q", false, true, false, false, nil); err != nil {
			t.Fatalf("QueueDeclare(%q) = %v; want nil", "narrow-q", err)
		}
		if err := ch.Publish("", "narrow-q", false, false, amqp.Publishing{Body: []byte("ok")}); err != nil {
			t.Fatalf("Publish = %v", err)
		}
		_, err = ch.QueueDeclare("other-q", false, true, false, false, nil)
		var aerr *amqp.Error
		if !errors.As(err, &aerr) || aerr.Code != amqp.AccessRefused {
			t.Errorf("QueueDeclare(%q) = %v; want code %d (ACCESS_REFUSED)", "other-q", err, amqp.AccessRefused)
		}

		// guest has no permissions on the new vhost.
		c, err := amqp.Dial(fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/%s", n.amqpPort, vhost))
		if err == nil {
			c.Close()
		}
		checkDialErr(t, "Dial(guest, vhost narrow)", err, "NOT_ALLOWED")

		wrong := "wrong-" + pass
		c, err = amqp.Dial(fmt.Sprintf("amqp://%s:%s@127.0.0.1:%d/%s", user, wrong, n.amqpPort, vhost))
		if err == nil {
			c.Close()
		}
		checkDialErr(t, "Dial(wrong password)", err, "username or password not allowed")
		if err != nil && strings.Contains(err.Error(), wrong) {
			t.Errorf("Dial(wrong password) = %v; want no password in it", err)
		}
	})

	t.Run("stop", func(t *testing.T) {
		pid := n.Pid(t)
		begin := time.Now()
		n.Stop(t)
		t.Logf("stop took %v", time.Since(begin).Round(time.Millisecond))
		if processAlive(pid) {
			t.Errorf("Erlang VM pid %d alive after Stop", pid)
		}
		for _, port := range []int{n.amqpPort, n.tlsPort, n.distPort, n.epmdPort} {
			if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second); err == nil {
				c.Close()
				t.Errorf("port %d answers after Stop; want it closed", port)
			}
		}
	})
}

func TestPrivateNodeMutualTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	n := startPrivateNode(t, privateNodeTLS(pki.caPEM, pki.serverCertPEM, pki.serverKeyPEM, true))
	other := newTestPKI(t) // a client certificate the node does not trust
	for _, tc := range []struct {
		name   string
		cfg    *tls.Config
		wantOK bool
	}{
		{"client cert", pki.clientConfig(true), true},
		// The refusal reaches the client as an alert or, as with TLS 1.3
		// the server judges the client's certificate after the client's
		// side of the handshake is done, as a reset on the next write: any
		// error will do.
		{"no client cert", pki.clientConfig(false), false},
		{"untrusted client cert", &tls.Config{RootCAs: pki.roots, Certificates: []tls.Certificate{other.clientCert}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := amqp.DialTLS(n.TLSURL(), tc.cfg)
			if err == nil {
				conn.Close()
			}
			if (err == nil) != tc.wantOK {
				t.Errorf("DialTLS = %v; want success %v", err, tc.wantOK)
			}
		})
	}
	t.Run("plain listener", func(t *testing.T) {
		privateNodeDial(t, n.URL())
	})
}

func TestPrivateNodeUnavailable(t *testing.T) {
	script, err := filepath.Abs(privateNodeScript)
	if err != nil {
		t.Fatal(err)
	}
	if got := privateNodeUnavailable(filepath.Join(t.TempDir(), "missing.sh")); !strings.Contains(got, "no such file") {
		t.Errorf("privateNodeUnavailable(missing script) = %q; want it to say no such file", got)
	}
	t.Setenv("PRIVNODE_RABBITMQ_BIN", "/nonexistent/rabbitmq/bin")
	if got := privateNodeUnavailable(script); !strings.Contains(got, "install rabbitmq-server") {
		t.Errorf("privateNodeUnavailable(no RabbitMQ) = %q; want it to say to install rabbitmq-server", got)
	}
}

// privateNodeDial connects to url, closing the connection when the test
// ends.
func privateNodeDial(t testing.TB, url string) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("amqp.Dial = %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// checkDialErr checks that err is nil when want is "", and else an error
// containing want.
func checkDialErr(t testing.TB, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s = %v; want nil", what, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%s = %v; want an error containing %q", what, err, want)
	}
}

// closeReason waits up to d for the connection's close notification.
func closeReason(t testing.TB, closed <-chan *amqp.Error, d time.Duration) *amqp.Error {
	t.Helper()
	select {
	case err := <-closed:
		return err
	case <-time.After(d):
		t.Fatalf("connection not closed within %v", d)
		return nil
	}
}

// processAlive reports whether pid runs (and is not a zombie).
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}
