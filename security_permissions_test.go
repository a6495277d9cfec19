package amqprpc

// The least-privilege RabbitMQ permissions of docs/SECURITY.md, for clients
// and servers in both reply modes, proved on a private node.

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
)

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
					require.NoError(t, err, "Dial as %s", clientUser[m.name])
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
				require.NoError(t, err, "amqp.Dial as %s", user)
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
					require.NoError(t, err, "Channel")
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
			require.NoError(t, err, "amqp.Dial as arith-server")
			defer conn.Close()
			ch, err := conn.Channel()
			require.NoError(t, err, "Channel")
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
				client, err := Dial(urlOf(clientUser[m.name]), queue, m.opt, WithCallTimeout(time.Second), withInspectWait(5*time.Second))
				require.NoError(t, err, "Dial")
				defer client.Close()
				var r int
				err = client.Call("Arith.Multiply", &Args{2, 3}, &r)
				if !errors.Is(Cause(err), ErrTimeout) || !strings.Contains(err.Error(), "the queue has no consumer") {
					t.Errorf("Call with no server = %v; want ErrTimeout saying the queue has no consumer", err)
				}
			})
		}
	})

	t.Run("control protocol", func(t *testing.T) { secControl(t, node, vhost, pass) }) // security_control_test.go

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
	require.NoError(t, err, "Dial")
	defer client.Close()
	var r int
	within(t, 6*time.Second, "a call to a server that may not reply", func() {
		err = client.Call("Arith.Multiply", &Args{2, 3}, &r)
	})
	if !errors.Is(Cause(err), ErrTimeout) {
		t.Errorf("Call to a server that may not reply = %v; want ErrTimeout", err)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		// The session's loss, not the control protocol's warning, which
		// this user's permissions cause too (security_control_test.go).
		if strings.Contains(line, "ACCESS_REFUSED") && strings.Contains(line, "session lost") {
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
		require.NoError(t, err, "amqp.Dial")
		defer conn.Close()
		cc, err := NewClientCodec(conn, queue, opts...)
		require.NoError(t, err, "NewClientCodec")
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
		case took >= 4*time.Second:
			t.Errorf("call %d without write permission took %v; want it to fail well before its 5s timeout", i+1, took)
		}
		t.Logf("call %d after %v: %v", i+1, took.Round(time.Millisecond), err)
	}
	secSetPerms(t, node, vhost, "probe", granted)
	callWorks(t, client, 10*time.Second, "the same client once write is granted")
	if !strings.Contains(logs.String(), "ACCESS_REFUSED") {
		t.Errorf("client log has no ACCESS_REFUSED:\n%s", logs.String())
	}
}
