package amqprpc

// The control protocol end to end (control.go, controlclient.go, stats.go):
// three instances of one service account for every call exactly once, an
// instance that dies drops out, and the answers hold what PROTOCOL.md §13
// says.

import (
	"context"
	"net/rpc"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// controlAsk runs ask (Ping, Info or Stats) with a wait long enough for a
// loaded machine, failing the test on an error.
func controlAsk(t testing.TB, ask func(context.Context, string, string, ...ControlOption) ([]Instance, error), url, queue string, opts ...ControlOption) []Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opts = append([]ControlOption{WithControlWait(10 * time.Second)}, opts...)
	got, err := ask(ctx, url, queue, opts...)
	require.NoError(t, err)
	return got
}

// byName indexes instances by their metadata "name".
func byName(t testing.TB, instances []Instance) map[string]Instance {
	t.Helper()
	m := make(map[string]Instance)
	for _, in := range instances {
		m[in.Metadata["name"]] = in
	}
	return m
}

// methodsOf returns an instance's method counters by name.
func methodsOf(in Instance) map[string]MethodStats {
	m := make(map[string]MethodStats)
	for _, s := range in.Methods {
		m[s.Name] = s
	}
	return m
}

// TestControlStatsThreeInstances serves one queue with three instances,
// each with prefetch 1. Each instance in turn gets a mix of calls of its
// own while the ones before it hold a Wait call, so that the broker can
// give them nothing else: STATS must then count every call exactly once,
// on the instance that ran it.
func TestControlStatsThreeInstances(t *testing.T) {
	url := brokertest.URL(t)
	queue := testQueue(t)
	client := dial(t, queue)
	ariths := map[string]*Arith{}
	var waits []*rpc.Call
	mixes := []struct {
		name  string
		calls func(t *testing.T)
		hold  bool // end with a Wait call the instance holds
	}{
		{"one", func(t *testing.T) {
			for i := range 5 {
				multiply(t, client, i, 2, "")
			}
			for range 2 {
				divideByZero(t, client)
			}
			var r int
			require.Error(t, client.Call("Arith.Nope", &Args{}, &r)) // refused: no such method
		}, true},
		{"two", func(t *testing.T) {
			var s string
			for range 3 {
				require.NoError(t, client.Call("Arith.Who", &Args{}, &s))
			}
			var q Quotient
			for i := range 4 {
				require.NoError(t, client.Call("Arith.Divide", &Args{i + 7, 2}, &q))
			}
		}, true},
		{"three", func(t *testing.T) {
			multiply(t, client, 3, 3, "")
			multiply(t, client, 4, 4, "")
			var p Payload
			require.NoError(t, client.Call("Arith.Echo", &Payload{Note: "hi"}, &p))
			divideByZero(t, client)
		}, false},
	}
	for i, mix := range mixes {
		a := newArith(mix.name)
		ariths[mix.name] = a
		s := serveArith(t, a, url, queue, WithPrefetch(1), WithVersion("v-"+mix.name), WithMetadata(map[string]string{"name": mix.name}))
		brokertest.WaitForConsumers(t, url, queue, i+1, s)
		mix.calls(t)
		if mix.hold {
			waits = append(waits, client.Go("Arith.Wait", &Args{i, 1}, new(int), nil))
			a.waitBegan(t)
		}
	}

	want := map[string]map[string][2]uint64{ // instance, method: calls, errors
		"one":   {"Arith.Multiply": {5, 0}, "Arith.Divide": {2, 2}},
		"two":   {"Arith.Who": {3, 0}, "Arith.Divide": {4, 0}},
		"three": {"Arith.Multiply": {2, 0}, "Arith.Echo": {1, 0}, "Arith.Divide": {1, 1}},
	}
	got := byName(t, controlAsk(t, Stats, url, queue))
	checkStats(t, "while one and two hold a call", got, want, map[string]int64{"one": 1, "two": 1, "three": 0})
	assert.EqualValues(t, 1, got["one"].Refused, "one: refused")

	ariths["one"].open()
	ariths["two"].open()
	for _, c := range waits {
		require.NoError(t, waitCall(t, c, 10*time.Second, "Arith.Wait").Error)
	}
	want["one"]["Arith.Wait"] = [2]uint64{1, 0}
	want["two"]["Arith.Wait"] = [2]uint64{1, 0}
	got = byName(t, controlAsk(t, Stats, url, queue))
	checkStats(t, "after every call", got, want, map[string]int64{"one": 0, "two": 0, "three": 0})

	// Every call exactly once, over all instances.
	totals := map[string]uint64{}
	for _, in := range got {
		for _, m := range in.Methods {
			totals[m.Name] += m.Calls
		}
	}
	assert.Equal(t, map[string]uint64{"Arith.Multiply": 7, "Arith.Divide": 7, "Arith.Who": 3, "Arith.Echo": 1, "Arith.Wait": 2}, totals)
}

// checkStats compares STATS answers with want (instance, method: calls,
// errors) and the calls in flight.
func checkStats(t *testing.T, when string, got map[string]Instance, want map[string]map[string][2]uint64, inFlight map[string]int64) {
	t.Helper()
	require.Len(t, got, len(want), "%s: instances answering STATS", when)
	for name, methods := range want {
		in := got[name]
		assert.Equal(t, ControlStats, in.Type, "%s: %s: type", when, name)
		assert.Equal(t, "v-"+name, in.Version, "%s: %s: version", when, name)
		assert.Equal(t, inFlight[name], in.InFlight, "%s: %s: in flight", when, name)
		ms := methodsOf(in)
		assert.Len(t, ms, len(methods), "%s: %s: methods %v", when, name, in.Methods)
		for method, ce := range methods {
			m := ms[method]
			assert.Equal(t, ce, [2]uint64{m.Calls, m.Errors}, "%s: %s: %s calls, errors", when, name, method)
			if m.Calls > 0 && (m.ProcessingTime <= 0 || m.AverageProcessingTime != m.ProcessingTime/time.Duration(m.Calls)) {
				t.Errorf("%s: %s: %s processing time %v, average %v; want > 0 and total/calls", when, name, method, m.ProcessingTime, m.AverageProcessingTime)
			}
			wantLast := ""
			if ce[1] > 0 {
				wantLast = "divide by zero"
			}
			assert.Equal(t, wantLast, m.LastError, "%s: %s: %s last error", when, name, method)
		}
	}
}

// divideByZero calls Arith.Divide by zero, which fails.
func divideByZero(t *testing.T, client *rpc.Client) {
	t.Helper()
	var q Quotient
	if err := client.Call("Arith.Divide", &Args{1, 0}, &q); err == nil || err.Error() != "divide by zero" {
		t.Fatalf("Call(Arith.Divide, 1/0) = %v; want divide by zero", err)
	}
}

// TestControlInstanceDies: an instance whose process is killed drops out of
// Ping (ls) and Info: its control queue goes with its connection.
func TestControlInstanceDies(t *testing.T) {
	url := brokertest.URL(t)
	queue := testQueue(t)
	child := startChildServer(t, queue)
	s := serveArith(t, newArith("alive"), url, queue, WithMetadata(map[string]string{"name": "alive"}))
	brokertest.WaitForConsumers(t, url, queue, 2, s)

	instances := controlAsk(t, Info, url, queue)
	require.Len(t, instances, 2, "Info with two instances")
	var childID string
	for _, in := range instances {
		if in.PID == child.cmd.Process.Pid {
			childID = in.ID
		}
	}
	require.NotEmpty(t, childID, "Info: no instance with the child's pid %d", child.cmd.Process.Pid)
	assert.Len(t, everyServiceOf(t, url, queue), 2, "Ping of every service: instances of %q", queue)

	require.NoError(t, child.cmd.Process.Kill())
	conn, _ := brokertest.Conn(t, url)
	brokertest.WaitFor(t, 10*time.Second, "the broker to see the killed instance's connection close", func() bool {
		return brokertest.Consumers(conn, queue) == 1
	})
	brokertest.WaitFor(t, 10*time.Second, "the killed instance gone from Info", func() bool {
		return len(controlAsk(t, Info, url, queue)) == 1
	})
	left := controlAsk(t, Info, url, queue)
	assert.Equal(t, "alive", left[0].Metadata["name"])
	// Its control queue went with its connection: nothing is bound under
	// its id any more, and the broker returns a request to it at once.
	start := time.Now()
	assert.Empty(t, controlAsk(t, Ping, url, queue, WithInstance(childID)), "Ping of the killed instance")
	assert.Less(t, time.Since(start), 5*time.Second, "Ping of the killed instance waited for its 10 s")
	assert.Len(t, everyServiceOf(t, url, queue), 1, "Ping of every service after the kill: instances of %q", queue)
}

// everyServiceOf asks every instance of every service (as amqprpc ls does)
// and returns those of queue.
func everyServiceOf(t *testing.T, url, queue string) []Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	all, err := Ping(ctx, url, "", WithControlWait(5*time.Second))
	require.NoError(t, err)
	var of []Instance
	for _, in := range all {
		if in.Service == queue {
			of = append(of, in)
		}
	}
	return of
}

// TestControlOneInstance: WithInstance asks one instance, found by id; an
// unknown id and an unknown queue get no answer at once.
func TestControlOneInstance(t *testing.T) {
	url := brokertest.URL(t)
	queue := testQueue(t)
	for i, name := range []string{"a", "b"} {
		s := serveArith(t, newArith(name), url, queue, WithMetadata(map[string]string{"name": name}))
		brokertest.WaitForConsumers(t, url, queue, i+1, s)
	}
	all := controlAsk(t, Ping, url, queue)
	require.Len(t, all, 2)
	for _, in := range all {
		one := controlAsk(t, Stats, url, queue, WithInstance(in.ID))
		require.Len(t, one, 1, "Stats WithInstance(%s)", in.ID)
		assert.Equal(t, in.ID, one[0].ID)
		assert.Equal(t, in.Metadata["name"], one[0].Metadata["name"])
	}
	for _, tc := range []struct {
		name  string
		queue string
		opts  []ControlOption
	}{
		{"unknown instance", queue, []ControlOption{WithInstance("0123456789abcdef")}},
		{"unknown queue", queue + "-none", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			got := controlAsk(t, Info, url, tc.queue, tc.opts...)
			assert.Empty(t, got)
			// The wait is 10 s: nothing is bound under the key (the
			// broker returns the request) or there is no queue to ask.
			assert.Less(t, time.Since(start), 5*time.Second, "no answer should take no wait")
		})
	}
}

// TestControlOff: WithoutControl serves with no control queue, so the
// instance answers nothing.
func TestControlOff(t *testing.T) {
	url := brokertest.URL(t)
	queue := testQueue(t)
	s := serveArith(t, newArith("off"), url, queue, WithoutControl())
	brokertest.WaitForConsumers(t, url, queue, 1, s)
	client := dial(t, queue)
	multiply(t, client, 2, 3, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := Ping(ctx, url, queue, WithControlWait(time.Second))
	require.NoError(t, err)
	assert.Empty(t, got, "Ping of an instance WithoutControl")
}

// TestControlAfterReconnect: after the server's connection is cut and it
// reconnects, the same instance (same id, same counters) answers again, on
// a new control queue.
func TestControlAfterReconnect(t *testing.T) {
	url := brokertest.URL(t)
	queue := testQueue(t)
	proxy := newTCPProxy(t, "127.0.0.1:5672")
	s := serveArith(t, newArith("cut"), "amqp://guest:guest@"+proxy.Addr()+"/", queue,
		WithReconnectBackoff(50*time.Millisecond, 200*time.Millisecond))
	brokertest.WaitForConsumers(t, url, queue, 1, s)
	client := dial(t, queue)
	multiply(t, client, 2, 3, "before the cut")
	before := controlAsk(t, Stats, url, queue)
	require.Len(t, before, 1)

	proxy.Cut()
	callWorks(t, client, 20*time.Second, "a call after the server reconnects")
	var after []Instance
	brokertest.WaitFor(t, 20*time.Second, "the instance answering again", func() bool {
		after = controlAsk(t, Stats, url, queue)
		return len(after) == 1
	})
	assert.Equal(t, before[0].ID, after[0].ID, "instance id after the reconnect")
	assert.EqualValues(t, 2, methodsOf(after[0])["Arith.Multiply"].Calls, "Arith.Multiply calls before and after the reconnect")
}

// TestControlLongQueueName: a queue name too long for the service key
// (over 247 bytes) is asked through the key of all, and found.
func TestControlLongQueueName(t *testing.T) {
	url := brokertest.URL(t)
	queue := testQueue(t)
	queue += strings.Repeat("x", 250-len(queue))
	if _, ok := serviceKey(queue); ok {
		t.Fatalf("serviceKey of a %d-byte queue name fits; want it too long", len(queue))
	}
	t.Cleanup(func() {
		_, ch := brokertest.Conn(t, url)
		_, _ = ch.QueueDelete(queue, false, false, false)
	})
	s := serveArith(t, newArith("long"), url, queue)
	brokertest.WaitForConsumers(t, url, queue, 1, s)
	// Another service's instance answers under all too, and must not
	// count as the one expected.
	other := testQueue(t)
	o := serveArith(t, newArith("other"), url, other)
	brokertest.WaitForConsumers(t, url, other, 1, o)
	got := controlAsk(t, Info, url, queue, WithControlWait(3*time.Second))
	require.Len(t, got, 1, "Info of a %d-byte queue", len(queue))
	assert.Equal(t, queue, got[0].Service)
}
