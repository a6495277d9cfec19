package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Config is what a Client and a Server have in common: where the broker is
// and how a session is kept up.
type Config struct {
	// Conn is a connection to borrow: the Client or Server opens its own
	// channel on it, reopens the channel after a channel error, and never
	// closes Conn; once Conn has closed it gives up. When Conn is nil it
	// dials with Dial, owns its connections and reconnects after a loss.
	Conn *amqp.Connection
	// Dial opens a connection to the broker, returning as soon as ctx ends.
	Dial func(ctx context.Context) (*amqp.Connection, error)
	// Confirm puts the channel in confirm mode (see ClientHandler.Confirmed
	// and Server.Respond).
	Confirm bool
	// Backoff spaces the attempts to reconnect after a loss; zero means
	// 100ms to 10s.
	Backoff Backoff
	// OpenTimeout bounds opening a channel and setting it up; 0 means 10s.
	OpenTimeout time.Duration
	Logger      *slog.Logger // nil logs nothing
}

// defaultOpenTimeout bounds the setup of a session when Config.OpenTimeout
// is 0.
const defaultOpenTimeout = 10 * time.Second

// side is what a Client or a Server adds to the supervisor.
type side interface {
	// setup declares and consumes what the side needs on s.ch. The side
	// reads the deliveries itself.
	setup(s *session) error
	// returned handles a message the broker could not route.
	returned(r *amqp.Return)
	// settle handles the broker's confirm of a message published on s.
	settle(s *session, p pendingConfirm, ack bool)
	// lost is told that s ended with err; ready, that s is up after a
	// reconnect; ended, that the borrowed connection is gone for good.
	// They are called on the supervisor's goroutine and must return soon.
	lost(s *session, err error)
	ready(s *session)
	ended(err error)
}

// supervisor keeps one session up at a time: dial (through every URL, with
// backoff), set up, watch, and after a loss do it all again, until Close.
// One goroutine owns the sessions and drains every notification the broker
// sends but the deliveries, which the side reads; it never waits on a
// publish.
type supervisor struct {
	cfg  Config
	side side
	what string
	log  *slog.Logger

	ctx      context.Context // cancelled by close: stops the goroutine and any dial
	cancel   context.CancelFunc
	noRetry  chan struct{} // closed by stopRetrying
	stopOnce sync.Once
	stopped  chan struct{} // closed when the goroutine has ended

	mu      sync.Mutex    // guards cur, why, gone, changed and running
	running bool          // the goroutine was started (or close came first)
	cur     *session      // nil between sessions
	why     error         // why cur is nil
	gone    bool          // the borrowed connection has closed for good
	changed chan struct{} // closed, and replaced, whenever cur changes
}

// newSupervisor makes the supervisor of a side named what ("client" or
// "server") in its logs.
func newSupervisor(cfg Config, sd side, what string) (*supervisor, error) {
	if cfg.Conn == nil && cfg.Dial == nil {
		return nil, ErrNoURL
	}
	if cfg.OpenTimeout <= 0 {
		cfg.OpenTimeout = defaultOpenTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Backoff.Min <= 0 || cfg.Backoff.Max < cfg.Backoff.Min {
		cfg.Backoff = Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second}
	}
	if cfg.Conn != nil && cfg.Conn.IsRecoveryEnabled() {
		return nil, errorf("a borrowed connection with amqp091-go's Recovery on is not supported: it reopens channels behind the library's back")
	}
	sv := &supervisor{
		cfg: cfg, side: sd, what: what, log: cfg.Logger,
		noRetry: make(chan struct{}), stopped: make(chan struct{}), changed: make(chan struct{}),
	}
	sv.ctx, sv.cancel = context.WithCancel(context.Background())
	return sv, nil
}

// connect opens the first session, its dial bounded by ctx. A first
// session that fails is an error: a wrong URL or password should not turn
// into silent retries.
func (sv *supervisor) connect(ctx context.Context) error {
	s, err := sv.openSession(ctx, 1)
	if err != nil {
		sv.cancel()
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
		}
		return err
	}
	sv.cur = s
	return nil
}

// begin starts the goroutine that watches the first session and
// reconnects; it does nothing after close or a second time.
func (sv *supervisor) begin() {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.running || sv.ctx.Err() != nil {
		return
	}
	sv.running = true
	go sv.run(sv.cur)
}

// current returns the live session, or the reason there is none.
func (sv *supervisor) current() (*session, <-chan struct{}, error) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	switch {
	case sv.ctx.Err() != nil:
		return nil, sv.changed, ErrClosed
	case sv.gone:
		return nil, sv.changed, sv.why
	case sv.cur == nil && sv.why != nil:
		return nil, sv.changed, fmt.Errorf("%w: %w", ErrNotConnected, sv.why)
	case sv.cur == nil:
		return nil, sv.changed, ErrNotConnected
	}
	return sv.cur, sv.changed, nil
}

func (sv *supervisor) setCurrent(s *session, why error) {
	sv.mu.Lock()
	sv.cur, sv.why = s, why
	close(sv.changed)
	sv.changed = make(chan struct{})
	sv.mu.Unlock()
}

// stopRetrying makes the goroutine end after the current session instead
// of reconnecting.
func (sv *supervisor) stopRetrying() { sv.stopOnce.Do(func() { close(sv.noRetry) }) }

// close ends the goroutine and the session, and waits for both. It is
// idempotent.
func (sv *supervisor) close() {
	sv.stopRetrying()
	sv.mu.Lock()
	sv.cancel()
	running, first := sv.running, sv.cur
	sv.running = true // no goroutine starts from now on
	sv.mu.Unlock()
	if !running {
		if first != nil {
			first.close()
		}
		close(sv.stopped)
	}
	<-sv.stopped
}

// run owns the sessions: it watches one until it ends, then reconnects.
func (sv *supervisor) run(s *session) {
	defer close(sv.stopped)
	attempt := 0
	for {
		began := time.Now()
		err := sv.watch(s)
		s.end(err)
		sv.setCurrent(nil, err)
		s.close()
		if sv.ctx.Err() != nil {
			return
		}
		sv.log.Warn("amqprpc: "+sv.what+" session lost", "gen", s.gen, "err", err)
		sv.side.lost(s, err)
		if time.Since(began) >= stableSession {
			attempt = 0
		}
		if s, attempt = sv.reconnect(s.gen+1, attempt); s == nil {
			return
		}
		sv.log.Info("amqprpc: "+sv.what+" reconnected", "gen", s.gen)
		sv.side.ready(s)
	}
}

// watch drains the session's notifications until it ends or close is
// called. Every handler it calls returns at once. amqp091-go closes every
// notification channel when the channel closes, after it has sent the
// reason to closes: a closed one other than closes is dropped from the
// select, so that the reason is what watch reports.
func (sv *supervisor) watch(s *session) error {
	cancels, returns, blocks := s.cancels, s.returns, s.blocks
	for {
		select {
		case <-sv.ctx.Done():
			return ErrClosed
		case err := <-s.abandoned:
			return err
		case tag, ok := <-cancels:
			if !ok {
				cancels = nil
				continue
			}
			return fmt.Errorf("%w: the broker cancelled consumer %q (queue deleted?)", ErrConnectionLost, tag)
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			sv.side.returned(&r)
		case b, ok := <-blocks:
			if !ok {
				blocks = nil
				continue
			}
			var reason *string // nil: unblocked
			if b.Active {
				reason = &b.Reason
			}
			s.blocked.Store(reason)
			sv.log.Warn("amqprpc: connection.blocked changed", "blocked", b.Active, "reason", b.Reason)
		case e, ok := <-s.closes:
			if !ok || e == nil {
				return fmt.Errorf("%w: channel closed", ErrConnectionLost)
			}
			return fmt.Errorf("%w: %w", ErrConnectionLost, e)
		}
	}
}

// reconnect opens a new session, waiting between attempts, until it works,
// close is called or retrying stops. On a borrowed connection that has
// closed it gives up and tells the side.
func (sv *supervisor) reconnect(gen uint64, first int) (*session, int) {
	for attempt := first; ; attempt++ {
		t := time.NewTimer(sv.cfg.Backoff.delay(attempt))
		select {
		case <-sv.ctx.Done():
		case <-sv.noRetry:
		case <-t.C:
		}
		t.Stop()
		select {
		case <-sv.ctx.Done():
			return nil, attempt
		case <-sv.noRetry:
			return nil, attempt
		default:
		}
		if sv.cfg.Conn != nil && sv.cfg.Conn.IsClosed() {
			err := fmt.Errorf("%w: the borrowed connection is closed", ErrConnectionLost)
			sv.mu.Lock()
			sv.gone, sv.why = true, err
			close(sv.changed)
			sv.changed = make(chan struct{})
			sv.mu.Unlock()
			sv.log.Error("amqprpc: the borrowed connection is closed; the " + sv.what + " gives up")
			sv.side.ended(err)
			return nil, attempt
		}
		s, err := sv.openSession(sv.ctx, gen)
		if err != nil {
			sv.setCurrent(nil, err)
			sv.log.Warn("amqprpc: "+sv.what+" reconnect failed", "attempt", attempt+1, "err", err)
			continue
		}
		sv.setCurrent(s, nil)
		return s, attempt + 1
	}
}
