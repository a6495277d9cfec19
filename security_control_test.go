package amqprpc

// The RabbitMQ permissions of the control protocol (docs/SECURITY.md §2),
// proved on the private node of TestSecurityPermissions: a server with the
// documented ones answers it, and so does a monitoring user's Stats; a
// server without any one of them serves all the same and says so once;
// Stats without one fails with ACCESS_REFUSED.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// The permissions docs/SECURITY.md gives for the control protocol: a
// server of queue that also answers it, and a user that asks it (Stats,
// amqprpc ls, info and stats).
func secControlServerPerms(queue string) secPerms {
	q := regexpQuote(queue)
	return secPerms{`^(` + q + `|amqprpc\.control|amq\.gen-.*)$`, `^(amq\.default|amq\.gen-.*)$`, `^(` + q + `|amqprpc\.control|amq\.gen-.*)$`}
}

var secControlMonitorPerms = secPerms{`^amq\.gen-.*`, `^amqprpc\.control$`, `^amq\.gen-.*`}

// secControlWarning is what a server logs when it serves without the
// control protocol.
const secControlWarning = "control queue not set up"

func secControl(t *testing.T, node *privateNode, vhost, pass string) {
	const queue = "stock"
	urlOf := func(user string) string {
		return fmt.Sprintf("amqp://%s:%s@127.0.0.1:%d/%s", user, pass, node.amqpPort, vhost)
	}
	server := secControlServerPerms(queue)
	node.AddUser(t, "stock-server", pass, vhost, server.configure, server.write, server.read)
	node.AddUser(t, "stock-client", pass, vhost, secClientPrivatePerms.configure, secClientPrivatePerms.write, secClientPrivatePerms.read)
	node.AddUser(t, "monitor", pass, vhost, secControlMonitorPerms.configure, secControlMonitorPerms.write, secControlMonitorPerms.read)
	node.AddUser(t, "ctl-probe", pass, vhost, "^$", "^$", "^$") // set per case below
	fast := WithReconnectBackoff(50*time.Millisecond, 500*time.Millisecond)

	var logs secLog
	faultServer(t, urlOf("stock-server"), queue, fast, WithLogger(logs.logger()), WithMetadata(map[string]string{"name": "least"}))
	client, err := Dial(urlOf("stock-client"), queue, fast)
	require.NoError(t, err, "Dial as stock-client")
	defer client.Close()
	callWorks(t, client, 10*time.Second, "a call to the server with the control permissions")

	t.Run("least privilege", func(t *testing.T) {
		got := controlAsk(t, Stats, urlOf("monitor"), queue)
		require.Len(t, got, 1, "Stats as monitor")
		assert.Equal(t, "least", got[0].Metadata["name"])
		assert.Positive(t, methodsOf(got[0])["Arith.Multiply"].Calls, "Arith.Multiply calls")
		assert.Len(t, controlAsk(t, Ping, urlOf("monitor"), "", WithControlWait(5*time.Second)), 1, "Ping of every service as monitor")
		assert.NotContains(t, logs.String(), secControlWarning, "the server's log")
	})

	t.Run("a server cannot touch a caller's reply queue", func(t *testing.T) {
		// Configure and read on amq.gen-.* reach no other connection's
		// exclusive queue.
		_, cch := brokertest.Conn(t, urlOf("stock-client"))
		rq, err := cch.QueueDeclare("", false, true, true, false, nil)
		require.NoError(t, err)
		sconn, _ := brokertest.Conn(t, urlOf("stock-server"))
		for _, op := range []struct {
			name string
			do   func(ch *amqp.Channel) error
		}{
			{"Consume", func(ch *amqp.Channel) error {
				_, err := ch.Consume(rq.Name, "", true, false, false, false, nil)
				return err
			}},
			{"QueueDelete", func(ch *amqp.Channel) error { _, err := ch.QueueDelete(rq.Name, false, false, false); return err }},
			{"QueuePurge", func(ch *amqp.Channel) error { _, err := ch.QueuePurge(rq.Name, false); return err }},
		} {
			ch, err := sconn.Channel()
			require.NoError(t, err)
			err = op.do(ch)
			var ae *amqp.Error
			if !errors.As(err, &ae) || ae.Code != amqp.ResourceLocked {
				t.Errorf("%s(%q) as stock-server = %v; want 405 RESOURCE_LOCKED", op.name, rq.Name, err)
			}
			ch.Close()
		}
	})

	t.Run("server without each permission", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			perms secPerms
		}{
			{"configure amqprpc.control", secPerms{`^(stock|amq\.gen-.*)$`, server.write, server.read}},
			{"configure amq.gen", secPerms{`^(stock|amqprpc\.control)$`, server.write, server.read}},
			{"write amq.gen", secPerms{server.configure, `^amq\.default$`, server.read}},
			{"read amqprpc.control", secPerms{server.configure, server.write, `^(stock|amq\.gen-.*)$`}},
			{"read amq.gen", secPerms{server.configure, server.write, `^(stock|amqprpc\.control)$`}},
			{"none of them (the server row without control)", secServerPerms(queue)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				secSetPerms(t, node, vhost, "ctl-probe", tc.perms)
				var logs secLog
				srv := serveArith(t, newArith("probe"), urlOf("ctl-probe"), queue, fast, WithLogger(logs.logger()), WithMetadata(map[string]string{"name": "probe"}))
				defer srv.Stop()
				brokertest.WaitFor(t, 15*time.Second, "the control warning", func() bool {
					return strings.Contains(logs.String(), secControlWarning)
				})
				warning := secLine(logs.String(), secControlWarning)
				assert.Contains(t, warning, "ACCESS_REFUSED", "the warning")
				t.Logf("%s", warning)
				// It serves: both instances answer calls, and only the one
				// with the permissions answers Stats.
				secCallsReachBoth(t, client)
				got := controlAsk(t, Stats, urlOf("monitor"), queue, WithControlWait(2*time.Second))
				for _, in := range got {
					assert.NotEqual(t, "probe", in.Metadata["name"], "an instance without %s answered Stats", tc.name)
				}
			})
		}
	})

	t.Run("the warning comes once", func(t *testing.T) {
		secSetPerms(t, node, vhost, "ctl-probe", secServerPerms(queue))
		proxy := newTCPProxy(t, node.AMQPAddr())
		var logs secLog
		url := fmt.Sprintf("amqp://ctl-probe:%s@%s/%s", pass, proxy.Addr(), vhost)
		srv := serveArith(t, newArith("cut"), url, queue, fast, WithLogger(logs.logger()))
		defer srv.Stop()
		for i := range 2 {
			brokertest.WaitForConsumers(t, urlOf("monitor"), queue, 2, srv) // it and the server of the least privileges
			proxy.Cut()
			brokertest.WaitFor(t, 15*time.Second, "the server reconnected", func() bool {
				return strings.Count(logs.String(), "server reconnected") > i
			})
		}
		callWorks(t, client, 10*time.Second, "a call after the reconnects")
		assert.Equal(t, 1, strings.Count(logs.String(), secControlWarning), "control warnings over three sessions:\n%s", logs.String())
	})

	t.Run("Stats without each permission", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			perms secPerms
		}{
			{"write amqprpc.control", secPerms{secControlMonitorPerms.configure, `^$`, secControlMonitorPerms.read}},
			{"configure amq.gen", secPerms{`^$`, secControlMonitorPerms.write, secControlMonitorPerms.read}},
			{"read amq.gen", secPerms{secControlMonitorPerms.configure, secControlMonitorPerms.write, `^$`}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				secSetPerms(t, node, vhost, "ctl-probe", tc.perms)
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				_, err := Stats(ctx, urlOf("ctl-probe"), queue)
				if err == nil || !strings.Contains(err.Error(), "ACCESS_REFUSED") {
					t.Errorf("Stats without %s = %v; want ACCESS_REFUSED", tc.name, err)
				}
				t.Logf("%v", err)
			})
		}
	})
}

// secLine returns the first line of log that holds s.
func secLine(log, s string) string {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

// secCallsReachBoth calls Arith.Who until both the "probe" and the "fault"
// instance have answered, so that the one without control permissions is
// seen to serve.
func secCallsReachBoth(t *testing.T, client interface {
	Call(string, any, any) error
}) {
	t.Helper()
	seen := map[string]bool{}
	brokertest.WaitFor(t, 15*time.Second, "calls answered by both instances", func() bool {
		var who string
		if err := client.Call("Arith.Who", &Args{}, &who); err == nil {
			seen[who] = true
		}
		return seen["probe"] && seen["fault"]
	})
}
