package amqprpc

import (
	"bufio"
	"context"
	"fmt"
	"net/rpc"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// loadStats counts what happened to the calls of a load run. Every call
// ends in exactly one of answered, failed (a clear error), hung (no return
// within its timeout plus a grace period) or lost (an answer that does not
// match its request).
type loadStats struct {
	issued, answered, failed, hung, lost atomic.Int64

	mu     sync.Mutex     // guards errors
	errors map[string]int // failure texts, shortened, by count
}

// runLoad calls Arith.Work from n goroutines until stop closes, each call
// bounded by callTimeout plus a grace period. It returns once every
// goroutine has finished.
func runLoad(client *rpc.Client, n int, callTimeout time.Duration, work int, stop <-chan struct{}) *loadStats {
	st := &loadStats{errors: map[string]int{}}
	var wg sync.WaitGroup
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				want := g*1_000_000 + i
				st.issued.Add(1)
				c := client.Go("Arith.Work", &Args{work, want}, new(int), make(chan *rpc.Call, 1))
				select {
				case <-c.Done:
				case <-time.After(callTimeout + 5*time.Second):
					st.hung.Add(1)
					return // this caller is stuck; the others go on
				}
				switch {
				case c.Error != nil:
					st.failed.Add(1)
					st.noteError(c.Error)
					if c.Error == rpc.ErrShutdown {
						return
					}
				case *c.Reply.(*int) != want:
					st.lost.Add(1)
				default:
					st.answered.Add(1)
				}
			}
		}()
	}
	<-stop
	wg.Wait()
	return st
}

func (st *loadStats) noteError(err error) {
	text := err.Error()
	if i := strings.Index(text, " ("); i > 0 {
		text = text[:i]
	}
	st.mu.Lock()
	st.errors[fmt.Sprintf("%.90s", text)]++
	st.mu.Unlock()
}

// report logs the counts in one line that docs and the README table are
// built from, and the distinct errors.
func (st *loadStats) report(t testing.TB, scenario string) {
	t.Helper()
	t.Logf("RELIABILITY | %s | issued %d | answered %d | failed with a clear error %d | hung %d | lost %d",
		scenario, st.issued.Load(), st.answered.Load(), st.failed.Load(), st.hung.Load(), st.lost.Load())
	st.mu.Lock()
	defer st.mu.Unlock()
	var texts []string
	for text, n := range st.errors {
		texts = append(texts, fmt.Sprintf("%5d × %s", n, text))
	}
	sort.Strings(texts)
	for _, s := range texts {
		t.Logf("  %s", s)
	}
}

// check fails the test unless every call was answered or failed clearly.
func (st *loadStats) check(t testing.TB, allowFailures bool) {
	t.Helper()
	if st.hung.Load() != 0 || st.lost.Load() != 0 {
		t.Errorf("hung %d, lost %d; want 0 and 0", st.hung.Load(), st.lost.Load())
	}
	if !allowFailures && st.failed.Load() != 0 {
		t.Errorf("failed %d; want 0", st.failed.Load())
	}
	if sum := st.answered.Load() + st.failed.Load() + st.hung.Load() + st.lost.Load(); sum != st.issued.Load() {
		t.Errorf("issued %d but accounted for %d", st.issued.Load(), sum)
	}
	if st.answered.Load() == 0 {
		t.Errorf("no call was answered")
	}
}

// Work sleeps A milliseconds, standing for real work, and returns B.
func (t *Arith) Work(args *Args, reply *int) error {
	t.calls.Add(1)
	if args.A > 0 {
		time.Sleep(time.Duration(args.A) * time.Millisecond)
	}
	*reply = args.B
	return nil
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
	url := os.Getenv("AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
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
	if err != nil {
		t.Fatal(err)
	}
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
