package transport

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DirectReplyTo is the pseudo-queue through which RabbitMQ routes replies
// straight to the consumer that published the request.
const DirectReplyTo = "amq.rabbitmq.reply-to"

// ClientHandler receives what a Client hears from the broker. The Client
// calls it from its own goroutine, one call at a time, so a method must not
// block; it may call the Client's Publish.
type ClientHandler interface {
	// Reply is a message that arrived on the reply queue. It is passed by
	// value so that it does not escape to the heap on every reply.
	Reply(d amqp.Delivery)
	// Returned is a request the broker could not route to a queue.
	Returned(r *amqp.Return)
	// Confirmed reports the broker's ack or nack of a request published
	// with confirms on, by the request's correlation id.
	Confirmed(correlationID string, ack bool)
	// SessionLost reports the end of session gen: every request published
	// on it that has no reply yet will never get one.
	SessionLost(gen uint64, err error)
	// SessionReady reports that session gen is up and Publish works again.
	// It is called on a goroutine of its own, so that the Client goes on
	// draining the broker's notifications while the handler publishes; it
	// may overlap a later SessionLost, and the Client waits for it on Close.
	SessionReady(gen uint64)
	// Ended reports that the Client gave up for good: its borrowed
	// connection closed. Nothing will be delivered after it.
	Ended(err error)
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// Conn is a connection the Client borrows: it opens its own channel on
	// it, reopens the channel after a channel error, and never closes Conn.
	// When Conn is nil the Client dials with Dialer, owns its connections
	// and reconnects after a loss.
	Conn   *amqp.Connection
	Dialer Connector
	// DirectReplyTo receives replies through amq.rabbitmq.reply-to instead
	// of a private exclusive queue.
	DirectReplyTo bool
	// Confirm puts the channel in confirm mode and reports each request's
	// ack or nack to the handler.
	Confirm bool
	Backoff Backoff
	// OpenTimeout bounds opening a channel and setting up the reply
	// consumer; 0 means DefaultDialTimeout.
	OpenTimeout time.Duration
	Logger      *slog.Logger
}

// Client publishes requests and receives their replies. One goroutine owns
// its sessions: it drains every notification the broker sends, reports to
// the handler, and reconnects after a loss. Publish may be called from any
// goroutine.
type Client struct {
	cfg ClientConfig
	h   ClientHandler
	log *slog.Logger

	mu      sync.Mutex     // guards sess, lastErr, lost, started and closed
	sess    *clientSession // nil while between connections
	lastErr error          // why sess is nil
	lost    bool           // the borrowed connection is gone for good
	started bool
	closed  bool

	ctx      context.Context // cancelled by Close: stops the owning goroutine and any dial
	cancel   context.CancelFunc
	stopped  chan struct{}  // closed when the owning goroutine has ended
	handlers sync.WaitGroup // SessionReady calls and InspectQueue questions under way
}

// clientSession is one connection (or borrowed connection) and channel with
// its reply consumer. Its notification channels are drained by the Client's
// goroutine until the channel closes.
type clientSession struct {
	gen        uint64
	conn       *amqp.Connection
	owned      bool
	ch         *amqp.Channel
	replyTo    string
	deliveries <-chan amqp.Delivery
	returns    chan amqp.Return
	closes     chan *amqp.Error
	blockings  chan amqp.Blocking     // nil on a borrowed connection
	confirms   chan amqp.Confirmation // nil without Confirm
	blocked    atomic.Pointer[string] // reason while connection.blocked is on

	pubMu sync.Mutex        // makes a publish and its confirm tag one step; guards tags
	tags  map[uint64]string // confirm delivery tag -> correlation id
}

// NewClient connects and sets up the reply consumer; Start then starts the
// Client's goroutine. A first connection that fails is an error: a wrong URL
// or password should not turn into silent retries.
func NewClient(cfg ClientConfig, h ClientHandler) (*Client, error) {
	if cfg.Conn == nil && cfg.Dialer == nil {
		return nil, ErrNoURL
	}
	c := &Client{
		cfg:     cfg,
		h:       h,
		log:     loggerOrDiscard(cfg.Logger),
		stopped: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	s, err := c.open(1)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.sess = s
	return c, nil
}

// Start starts the goroutine that delivers to the handler and reconnects.
// Call it once, after whatever the handler needs is in place.
func (c *Client) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.closed {
		return
	}
	c.started = true
	go c.run(c.sess)
}

// ReplyTo returns the reply queue of the current session, or "" while
// disconnected. With a private queue it changes after every reconnect.
func (c *Client) ReplyTo() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return ""
	}
	return c.sess.replyTo
}

// Publish sends msg to the default exchange with routing key queue and the
// mandatory flag, setting its ReplyTo to the session's reply queue. It never
// waits for a connection: between connections it fails at once with an error
// wrapping ErrNotConnected. It returns the generation of the session that
// carried the message.
func (c *Client) Publish(queue string, msg *amqp.Publishing) (uint64, error) {
	s, err := c.current()
	if err != nil {
		return 0, err
	}
	if reason := s.blocked.Load(); reason != nil {
		return 0, fmt.Errorf("%w to %q (%s)", ErrBlocked, queue, *reason)
	}
	msg.ReplyTo = s.replyTo
	if s.confirms == nil {
		err = s.ch.Publish("", queue, true, false, *msg)
	} else {
		s.pubMu.Lock()
		tag := s.ch.GetNextPublishSeqNo()
		err = s.ch.Publish("", queue, true, false, *msg)
		if err == nil {
			s.tags[tag] = msg.CorrelationId
		}
		s.pubMu.Unlock()
	}
	if err != nil {
		// Only a broken channel or connection fails a publish of ours; the
		// session is ending and its goroutine will report the loss.
		return 0, fmt.Errorf("%w: publish to %q: %w", ErrNotConnected, queue, err)
	}
	return s.gen, nil
}

// current returns the live session or the reason there is none.
func (c *Client) current() (*clientSession, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, ErrClosed
	case c.lost:
		return nil, c.lastErr
	case c.sess == nil:
		if c.lastErr != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotConnected, c.lastErr)
		}
		return nil, ErrNotConnected
	}
	return c.sess, nil
}

// Close stops reconnecting, closes the channel and any connection the
// Client owns, and waits for its goroutine to end. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.stopped
		return nil
	}
	c.closed = true
	started := c.started
	c.mu.Unlock()
	c.cancel()
	if !started {
		c.sess.close()
		close(c.stopped)
		return nil
	}
	<-c.stopped
	c.handlers.Wait()
	return nil
}

// run owns the sessions: it watches one until it ends, then reconnects.
func (c *Client) run(s *clientSession) {
	defer close(c.stopped)
	attempt := 0
	for {
		began := time.Now()
		err := c.watch(s)
		c.mu.Lock()
		c.sess = nil
		c.lastErr = err
		c.mu.Unlock()
		s.close()
		if c.ctx.Err() != nil {
			return
		}
		c.log.Warn("amqprpc: client session lost", "gen", s.gen, "err", err)
		c.h.SessionLost(s.gen, err)
		if time.Since(began) >= stableSession {
			attempt = 0
		}
		if s, attempt = c.reconnect(s.gen+1, attempt); s == nil {
			if c.ctx.Err() == nil {
				c.mu.Lock()
				err := c.lastErr
				c.mu.Unlock()
				c.h.Ended(err)
			}
			return
		}
		c.log.Info("amqprpc: client reconnected", "gen", s.gen, "reply_to", s.replyTo)
		gen := s.gen
		c.handlers.Add(1)
		go func() {
			defer c.handlers.Done()
			c.h.SessionReady(gen)
		}()
	}
}

// watch drains the session's notifications until it ends or Close is called.
func (c *Client) watch(s *clientSession) error {
	for {
		select {
		case <-c.ctx.Done():
			return ErrClosed
		case d, ok := <-s.deliveries:
			if !ok {
				return lostError(s.closes, "reply consumer ended")
			}
			c.h.Reply(d)
		case r, ok := <-s.returns:
			if ok {
				c.h.Returned(&r)
			}
		case conf, ok := <-s.confirms:
			if ok {
				s.pubMu.Lock()
				id, found := s.tags[conf.DeliveryTag]
				delete(s.tags, conf.DeliveryTag)
				s.pubMu.Unlock()
				if found {
					c.h.Confirmed(id, conf.Ack)
				}
			}
		case b, ok := <-s.blockings:
			if ok {
				s.setBlocked(b)
				c.log.Warn("amqprpc: connection.blocked changed", "blocked", b.Active, "reason", b.Reason)
			}
		case e, ok := <-s.closes:
			if !ok || e == nil {
				return fmt.Errorf("%w: channel closed", ErrConnectionLost)
			}
			return fmt.Errorf("%w: %w", ErrConnectionLost, e)
		}
	}
}

// reconnect opens a new session, waiting between attempts, until it works or
// Close is called. On a borrowed connection that has closed it gives up.
func (c *Client) reconnect(gen uint64, first int) (*clientSession, int) {
	for attempt := first; ; attempt++ {
		if !c.wait(c.cfg.Backoff.Delay(attempt)) {
			return nil, attempt
		}
		if c.cfg.Conn != nil && c.cfg.Conn.IsClosed() {
			c.mu.Lock()
			c.lost = true
			c.lastErr = fmt.Errorf("%w: the borrowed connection is closed", ErrConnectionLost)
			c.mu.Unlock()
			return nil, attempt
		}
		s, err := c.open(gen)
		if err != nil {
			c.mu.Lock()
			c.lastErr = err
			c.mu.Unlock()
			c.log.Warn("amqprpc: client reconnect failed", "attempt", attempt+1, "err", err)
			continue
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			s.close()
			return nil, attempt
		}
		c.sess = s
		c.lastErr = nil
		c.mu.Unlock()
		return s, attempt + 1
	}
}

// wait waits for d unless Close comes first; it reports whether to go on.
func (c *Client) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// open makes a session: connection (unless borrowed), channel, reply queue
// and consumer, and the notifications the Client must drain. Every step is
// bounded: a broker that stops answering fails the attempt.
func (c *Client) open(gen uint64) (*clientSession, error) {
	s := &clientSession{gen: gen, conn: c.cfg.Conn}
	if s.conn == nil {
		conn, err := c.cfg.Dialer.Dial(c.ctx)
		if err != nil {
			return nil, err
		}
		s.conn, s.owned = conn, true
	}
	if err := c.setup(s); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// setup opens the session's channel and reply consumer, each step bounded
// in time.
func (c *Client) setup(s *clientSession) (err error) {
	guard := s.guard(orDefault(c.cfg.OpenTimeout, DefaultDialTimeout))
	defer guard.Stop()

	if s.ch, err = s.conn.Channel(); err != nil {
		return errorf("open channel: %w", err)
	}
	if c.cfg.Confirm {
		if err = s.ch.Confirm(false); err != nil {
			return errorf("enable publisher confirms: %w", err)
		}
		s.tags = make(map[uint64]string)
		s.confirms = s.ch.NotifyPublish(make(chan amqp.Confirmation, 256))
	}
	s.replyTo = DirectReplyTo
	if !c.cfg.DirectReplyTo {
		q, err := s.ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			return errorf("declare reply queue: %w", err)
		}
		s.replyTo = q.Name
	}
	// Replies are consumed with no-ack: direct reply-to requires it, and a
	// reply whose caller is gone has nowhere else to go.
	if s.deliveries, err = s.ch.Consume(s.replyTo, "", true, true, false, false, nil); err != nil {
		return errorf("consume replies from %q: %w", s.replyTo, err)
	}
	s.returns = s.ch.NotifyReturn(make(chan amqp.Return, 64))
	s.closes = s.ch.NotifyClose(make(chan *amqp.Error, 1))
	if s.owned {
		s.blockings = s.conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	}
	return nil
}

// guard closes an owned connection if the steps of open take longer than d,
// so a broker that stops answering mid-setup cannot hang the caller.
func (s *clientSession) guard(d time.Duration) *time.Timer {
	return time.AfterFunc(d, func() {
		if s.owned {
			_ = s.conn.CloseDeadline(time.Now())
		}
	})
}

func (s *clientSession) setBlocked(b amqp.Blocking) {
	if b.Active {
		reason := b.Reason
		s.blocked.Store(&reason)
		return
	}
	s.blocked.Store(nil)
}

// close releases the session: its owned connection, or else its channel.
// Closing the channel cancels the reply consumer, which deletes a private
// reply queue (it is auto-delete).
func (s *clientSession) close() {
	if s.owned {
		closeConn(s.conn)
		return
	}
	if s.ch != nil {
		_ = s.ch.Close()
	}
}

// closeConn closes a connection without waiting long for a broker that does
// not answer.
func closeConn(conn *amqp.Connection) {
	if conn != nil && !conn.IsClosed() {
		_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
	}
}

// closeTimeout bounds the close handshake with the broker.
const closeTimeout = 2 * time.Second

// lostError explains the end of a session whose deliveries stopped, using
// the channel's close reason when one is waiting.
func lostError(closes chan *amqp.Error, what string) error {
	select {
	case e, ok := <-closes:
		if ok && e != nil {
			return fmt.Errorf("%w: %w", ErrConnectionLost, e)
		}
	default:
	}
	return fmt.Errorf("%w: %s", ErrConnectionLost, what)
}

func loggerOrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
