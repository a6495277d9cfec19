package amqprpc

// Timeouts on a fake transport: the expiration requests carry. No broker.

import (
	"context"
	"net/rpc"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

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
