package transport

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// watchSession returns a server-side session whose notification channels
// the test drives, and a supervisor to watch it until ctx ends.
func watchSession(ctx context.Context) (*supervisor, *session) {
	sv := &supervisor{ctx: ctx, side: &Server{}, what: "server", log: slog.New(slog.DiscardHandler)}
	s := &session{cancels: make(chan string, 1), closes: make(chan *amqp.Error, 1)}
	return sv, s
}

// TestWatchReportsWhyTheChannelClosed: amqp091-go closes the consumer's
// cancel notifications when the channel closes, right after it has sent
// the reason on closes. A closed cancels is no broker cancel: watch must
// report the channel's reason (here a 541, which the poison guard looks
// for), never "the broker cancelled consumer".
func TestWatchReportsWhyTheChannelClosed(t *testing.T) {
	crash := &amqp.Error{Code: amqp.InternalError, Reason: "INTERNAL_ERROR"}
	t.Run("reason waiting", func(t *testing.T) {
		for i := range 20 { // the select picks among ready cases at random
			sv, s := watchSession(context.Background())
			s.closes <- crash
			close(s.cancels)
			err := sv.watch(s)
			var e *amqp.Error
			if !errors.As(err, &e) || e.Code != amqp.InternalError || !errors.Is(err, ErrConnectionLost) {
				t.Fatalf("run %d: watch = %v; want ErrConnectionLost wrapping the 541", i, err)
			}
		}
	})
	t.Run("cancels closed alone", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		sv, s := watchSession(ctx)
		close(s.cancels)
		if err := sv.watch(s); !errors.Is(err, ErrClosed) {
			t.Fatalf("watch with only cancels closed = %v; want it to wait for the reason (ErrClosed when close came first)", err)
		}
	})
	t.Run("a real cancel", func(t *testing.T) {
		sv, s := watchSession(context.Background())
		s.cancels <- "tag-1"
		if err := sv.watch(s); !errors.Is(err, ErrConnectionLost) || errors.As(err, new(*amqp.Error)) {
			t.Fatalf("watch after basic.cancel = %v; want ErrConnectionLost saying the broker cancelled the consumer", err)
		}
	})
}
