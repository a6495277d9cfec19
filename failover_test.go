package amqprpc

// Servers that die or restart while calls run: the broker hands their
// unacknowledged requests to another server and no call fails. The test
// binary doubles as a server process to be killed (startChildServer). Tests
// that stop, kill or cut a broker use private nodes (reconnect_test.go);
// these leave the shared broker alone.

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"net/rpc"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
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
	done := make(chan *brokertest.Stats)
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
	st.Report(t, "rolling restart of 2 servers, 16 callers")
	st.Check(t, false)
}

// childServerEnv makes the test binary run as a server on the named queue.
const childServerEnv = "AMQPRPC_TEST_CHILD_SERVER_QUEUE"

// childArith's Wait announces itself and never returns, so the process can
// be killed with the request unacknowledged.
type childArith struct{}

func (childArith) Wait(args *Args, reply *int) error {
	fmt.Printf("BEGAN %d\n", args.A)
	select {}
}

func runChildServer(queue string) int {
	srv := rpc.NewServer()
	if err := srv.RegisterName("Arith", childArith{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	url := cmp.Or(os.Getenv("AMQP_URL"), brokertest.DefaultURL)
	if err := Serve(context.Background(), srv, url, queue, WithPrefetch(1)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// childServer is a server in a process of its own.
type childServer struct {
	cmd   *exec.Cmd
	began chan string // lines the child prints
}

// startChildServer runs the test binary as a server on queue and waits until
// it consumes. It is killed when the test ends, if still alive.
func startChildServer(t *testing.T, queue string) *childServer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childServerEnv+"="+queue, "AMQP_URL="+brokertest.URL(t))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cs := &childServer{cmd: cmd, began: make(chan string, 16)}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case cs.began <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-scanned // the pipe ends when the process does
		_ = cmd.Wait()
	})
	brokertest.WaitForConsumers(t, brokertest.URL(t), queue, 1)
	return cs
}
