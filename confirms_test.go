package amqprpc

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// TestConfirmsSurviveAStalledWrite stalls the network from client and
// server to the broker for longer than amqp091-go waits for a listener of
// its notifications (5 s), with confirms on both sides and calls in flight,
// while the broker's confirms still flow back. Publishes block on full
// socket buffers meanwhile. If a publish held a lock that the handling of a
// confirm needs, amqp091-go would drop that confirm: a request never
// acknowledged (a prefetch slot lost for good) or a call left waiting.
// Afterwards every call has ended, no request stays unacknowledged, and the
// client works.
func TestConfirmsSurviveAStalledWrite(t *testing.T) {
	node := startPrivateNode(t)
	proxy := newTCPProxy(t, node.AMQPAddr())
	const queue = "confirm-stall"
	url := "amqp://guest:guest@" + proxy.Addr() + "/"
	// A heartbeat long enough that neither end gives up during the stall.
	opts := []Option{WithConfirms(), WithHeartbeat(10 * time.Second), WithConnectionName("confirm-stall")}
	faultServer(t, url, queue, append(asServer(opts), WithPrefetch(32))...)
	client, err := Dial(url, queue, append(asClient(opts), WithCallTimeout(30*time.Second))...)
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	callWorks(t, client, 10*time.Second, "first call")

	// Large bodies fill the socket buffers, so publishes block in the stall.
	payload := &Payload{Data: make([]byte, 256<<10)}
	var answered, failed, hung atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				call := client.Go("Arith.Echo", payload, new(Payload), nil)
				select {
				case <-call.Done:
					if call.Error != nil {
						failed.Add(1)
					} else {
						answered.Add(1)
					}
				case <-time.After(45 * time.Second):
					hung.Add(1)
					return
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // steady load before the stall
	proxy.PauseUpstream()
	time.Sleep(7 * time.Second) // the stall itself, past amqp091-go's 5 s
	proxy.Resume()
	time.Sleep(time.Second) // steady load after it
	close(stop)
	wg.Wait()
	t.Logf("stalled writes with confirms: %d answered, %d failed, %d hung", answered.Load(), failed.Load(), hung.Load())
	assert.Zero(t, hung.Load(), "calls hung")
	assert.NotZero(t, answered.Load(), "no call was answered")

	unacked := func() int {
		out := node.Ctl(t, "list_queues", "--no-table-headers", "name", "messages_unacknowledged")
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == queue {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
		return -1
	}
	brokertest.WaitFor(t, 30*time.Second, "no request left unacknowledged", func() bool { return unacked() == 0 })
	callWorks(t, client, 10*time.Second, "after the stall")
}
