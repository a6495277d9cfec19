package amqprpc

// Fault tests: servers that die or restart, and a soak. Tests that stop,
// kill or cut a broker use private nodes (faultnode_test.go); these leave
// the shared broker alone.

import (
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestServerKilledMidCallIsRedelivered kills a server process with SIGKILL
// while it runs a call: the broker gives the unacknowledged request to a
// second server and the caller gets its answer.
func TestServerKilledMidCallIsRedelivered(t *testing.T) {
	queue := testQueue(t)
	child := startChildServer(t, queue)
	client := dial(t, queue, WithCallTimeout(30*time.Second))
	call := client.Go("Arith.Wait", &Args{6, 7}, new(int), nil)
	select {
	case line := <-child.began:
		if line != "BEGAN 6" {
			t.Fatalf("child server said %q; want BEGAN 6", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the child server did not start the call")
	}
	if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second := newArith("second")
	second.open()
	startServer(t, second, queue)
	select {
	case <-call.Done:
	case <-time.After(30 * time.Second):
		t.Fatal("the call did not end after its server was killed")
	}
	if call.Error != nil || *call.Reply.(*int) != 42 {
		t.Fatalf("call whose server was killed = %d, %v; want 42 from the second server", *call.Reply.(*int), call.Error)
	}
	if got := second.calls.Load(); got != 1 {
		t.Fatalf("second server ran %d calls; want 1 (the redelivered one)", got)
	}
}

// TestRollingRestartUnderLoad restarts two servers one after the other,
// gracefully, while 16 goroutines call: no call may fail.
func TestRollingRestartUnderLoad(t *testing.T) {
	queue := testQueue(t)
	start := func(name string) func() {
		svc := newArith(name)
		svc.open()
		return startServer(t, svc, queue, WithPrefetch(8))
	}
	stopA := start("a")
	stopB := start("b")
	client := dial(t, queue, WithCallTimeout(30*time.Second))
	stop := make(chan struct{})
	done := make(chan *loadStats)
	go func() { done <- runLoad(client, 16, 30*time.Second, 2, stop) }()

	pause := func() { time.Sleep(700 * time.Millisecond) } // let load run between steps
	pause()
	stopA()
	start("a2")
	pause()
	stopB()
	start("b2")
	pause()
	close(stop)
	st := <-done
	st.report(t, "rolling restart of 2 servers, 16 callers")
	st.check(t, false)
}

// TestSoak runs 64 callers for AMQPRPC_SOAK (a duration, default 5s; `make
// soak` uses 60s) and checks that goroutines and heap are stable.
func TestSoak(t *testing.T) {
	d := 5 * time.Second
	if v := os.Getenv("AMQPRPC_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("AMQPRPC_SOAK=%q: %v", v, err)
		}
	}
	queue := testQueue(t)
	startServer(t, newArith("s1"), queue)
	client := dial(t, queue, WithCallTimeout(30*time.Second))
	stop := make(chan struct{})
	done := make(chan *loadStats)
	go func() { done <- runLoad(client, 64, 30*time.Second, 0, stop) }()

	measure := func() (goroutines int, heap uint64) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.HeapAlloc
	}
	time.Sleep(d / 4) // warm up under load
	g1, h1 := measure()
	time.Sleep(d * 3 / 4)
	g2, h2 := measure()
	close(stop)
	st := <-done
	st.report(t, "soak, 64 callers, "+d.String())
	st.check(t, false)
	t.Logf("goroutines %d -> %d, heap %d KiB -> %d KiB, %.0f calls/s", g1, g2, h1>>10, h2>>10, float64(st.answered.Load())/d.Seconds())
	if g2 > g1+8 {
		t.Errorf("goroutines grew from %d to %d under steady load", g1, g2)
	}
	if h2 > 2*h1+16<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB under steady load", h1>>10, h2>>10)
	}
}
