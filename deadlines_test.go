package amqprpc

// Timeouts on a fake transport: what they ask the broker, and the sessions
// they give up on (deadlines.go, heal.go). No broker.

import (
	"context"
	"net/rpc"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
	"github.com/amqprpc/amqprpc/transport"
)

// readAll reads responses from c until it closes, as net/rpc's reading
// goroutine does, and returns a channel of their errors.
func readAll(t *testing.T, c *clientCodec) <-chan string {
	t.Helper()
	out := make(chan string, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var r rpc.Response
			if err := c.ReadResponseHeader(&r); err != nil {
				return
			}
			_ = c.ReadResponseBody(nil)
			out <- r.Error
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return out
}

func TestTimeoutStormAsksAboutTheQueueOncePerSecond(t *testing.T) {
	c, f := fakeCodec(t, 2, WithCallTimeout(20*time.Millisecond))
	f.state = transport.QueueState{Exists: true}
	errs := readAll(t, c)
	const storm = 2500 * time.Millisecond
	calls := 0
	for start := time.Now(); time.Since(start) < storm; calls++ {
		write(t, c, uint64(calls+1))
		time.Sleep(10 * time.Millisecond) // a caller's pace
	}
	for range calls {
		select {
		case e := <-errs:
			require.Contains(t, e, "no consumer")
		case <-time.After(5 * time.Second):
			t.Fatal("a call did not time out")
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t.Logf("%d calls timed out over %v; the queue was inspected %d times", calls, storm, f.inspections)
	assert.LessOrEqual(t, f.inspections, 4, "inspections during %v of timeouts: want about one a second", storm)
}

// timeOut makes call seq on c and waits for its timeout.
func timeOut(t *testing.T, c *clientCodec, seq uint64, errs <-chan string) {
	t.Helper()
	write(t, c, seq)
	select {
	case e := <-errs:
		require.Contains(t, e, ErrTimeout.Error())
	case <-time.After(5 * time.Second):
		t.Fatalf("call %d did not time out", seq)
	}
}

func TestSessionThatDropsRequestsIsReopened(t *testing.T) {
	c, f := fakeCodec(t, 2, WithCallTimeout(50*time.Millisecond))
	// Other clients' requests wait in the queue: ours never get there.
	f.state = transport.QueueState{Exists: true, Consumers: 3, Messages: 40}
	errs := readAll(t, c)
	timeOut(t, c, 1, errs) // first sighting: could be a slow server
	f.mu.Lock()
	assert.Empty(t, f.reopened, "reopened after one round of timeouts")
	f.mu.Unlock()
	timeOut(t, c, 2, errs) // published after it, and no reply since
	f.mu.Lock()
	assert.Equal(t, []uint64{2}, f.reopened, "sessions reopened")
	f.mu.Unlock()
	// Not again soon, however long it goes on.
	timeOut(t, c, 3, errs)
	timeOut(t, c, 4, errs)
	f.mu.Lock()
	assert.Len(t, f.reopened, 1, "reopened again within %v", healEvery)
	f.mu.Unlock()
}

func TestTimeoutsThatAreNotADroppingSessionReopenNothing(t *testing.T) {
	for _, tt := range []struct {
		name  string
		state transport.QueueState
		late  bool // a late reply comes between the timeouts
	}{
		{"a server slower than the timeout", transport.QueueState{Exists: true, Consumers: 1}, true},
		{"no consumer", transport.QueueState{Exists: true}, false},
		{"no queue", transport.QueueState{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, f := fakeCodec(t, 2, WithCallTimeout(50*time.Millisecond))
			f.state = tt.state
			errs := readAll(t, c)
			for seq := uint64(1); seq <= 4; seq++ {
				timeOut(t, c, seq, errs)
				if tt.late {
					f.deliver(amqp.Delivery{CorrelationId: c.ids.format(seq), ContentType: "application/json", Body: []byte("1")})
					brokertest.WaitFor(t, 5*time.Second, "the late reply", func() bool {
						c.mu.Lock()
						defer c.mu.Unlock()
						return c.repliesSeen == seq
					})
				}
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			assert.Empty(t, f.reopened, "sessions reopened")
		})
	}
}

const century = 100 * 365 * 24 * time.Hour

func TestExpirationIsClampedToWhatBrokersTake(t *testing.T) {
	const most = "4294967295" // ms: 2^32-1, about 49.7 days
	t.Run("call timeout", func(t *testing.T) {
		c, f := fakeCodec(t, 2, WithCallTimeout(century))
		write(t, c, 1)
		assert.Equal(t, most, f.sent()[0].Expiration)
	})
	t.Run("context deadline", func(t *testing.T) {
		c, f := fakeCodec(t, 2, WithCallTimeout(0))
		client := rpc.NewClientWithCodec(c)
		ctx, cancel := context.WithTimeout(context.Background(), century)
		defer cancel()
		client.Go("Arith.Multiply", &callArgs{ctx: ctx, args: &Args{1, 2}}, new(int), nil)
		brokertest.WaitFor(t, 5*time.Second, "the request published", func() bool { return len(f.sent()) == 1 })
		assert.Equal(t, most, f.sent()[0].Expiration)
	})
	t.Run("short timeouts are exact", func(t *testing.T) {
		c, f := fakeCodec(t, 2, WithCallTimeout(1500*time.Millisecond))
		write(t, c, 1)
		assert.Equal(t, "1500", f.sent()[0].Expiration)
	})
	t.Run("published again", func(t *testing.T) {
		c, f := fakeCodec(t, 0, WithCallTimeout(century))
		write(t, c, 1)
		f.connect(2)
		c.SessionReady(2)
		require.Len(t, f.sent(), 1)
		assert.Equal(t, most, f.sent()[0].Expiration)
		n, err := strconv.ParseInt(f.sent()[0].Expiration, 10, 64)
		require.NoError(t, err)
		assert.LessOrEqual(t, n, int64(1<<32-1))
	})
}
