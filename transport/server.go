package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
)

// QueueConfig says how a Server declares its request queue.
type QueueConfig struct {
	Name string
	// Durable makes the queue survive a broker restart. Quorum queues are
	// always durable.
	Durable bool
	// Quorum declares a replicated quorum queue (x-queue-type: quorum).
	Quorum bool
	// Expires, when set, has the broker delete the queue once it has gone
	// unused (no consumer) that long (x-expires).
	Expires time.Duration
}

// ServerConfig configures a Server.
type ServerConfig struct {
	// Conn is a connection the Server borrows (see ClientConfig.Conn);
	// when nil the Server dials with Dialer and reconnects after a loss.
	Conn   *amqp.Connection
	Dialer Connector
	Queue  QueueConfig
	// Prefetch bounds the requests delivered and not yet acknowledged.
	Prefetch int
	// Confirm acknowledges a request only once the broker has confirmed
	// its reply.
	Confirm     bool
	Backoff     Backoff
	OpenTimeout time.Duration // 0 means DefaultDialTimeout
	Logger      *slog.Logger
}

// Request is a delivery from the request queue, tied to the session that
// delivered it: it can only be acknowledged there.
type Request struct {
	amqp.Delivery
	sess *serverSession
}

// Server consumes a request queue and publishes replies. One goroutine owns
// its sessions and reconnects after a loss; Next is called by one reader
// goroutine and Respond from any.
type Server struct {
	cfg ServerConfig
	log *slog.Logger

	mu      sync.Mutex     // guards sess and changed
	sess    *serverSession // nil while between connections
	changed chan struct{}  // closed (and replaced) whenever sess changes

	ctx      context.Context // cancelled by Close
	cancel   context.CancelFunc
	stopping chan struct{} // closed by Stop
	stopOnce sync.Once
	dead     chan struct{} // closed when the borrowed connection is gone for good
	drained  atomic.Bool   // Next has cancelled the consumer and drained it
	stopped  chan struct{} // closed when the owning goroutine has ended
	poison   *poisonGuard
}

type serverSession struct {
	gen        uint64
	conn       *amqp.Connection
	owned      bool
	ch         *amqp.Channel
	tag        string
	deliveries <-chan amqp.Delivery
	closes     chan *amqp.Error
	blockings  chan amqp.Blocking
	confirms   chan amqp.Confirmation

	pubMu sync.Mutex          // makes a publish and its confirm tag one step; guards acks
	acks  map[uint64]*Request // confirm delivery tag -> request to settle

	// syncMu serializes the synchronous methods that can run on ch from
	// two goroutines (the drain's basic.cancel, the owner's channel.close):
	// amqp091-go hands replies to waiters in turn, and two waiters at once
	// can hang.
	syncMu sync.Mutex
}

// NewServer connects, declares the queue and starts consuming. A first
// connection that fails is an error.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Conn == nil && cfg.Dialer == nil {
		return nil, ErrNoURL
	}
	s := &Server{
		cfg:      cfg,
		log:      loggerOrDiscard(cfg.Logger),
		changed:  make(chan struct{}),
		stopping: make(chan struct{}),
		dead:     make(chan struct{}),
		stopped:  make(chan struct{}),
		poison:   newPoisonGuard(),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	sess, err := s.open(1)
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.sess = sess
	go s.run(sess)
	return s, nil
}

// Next returns the next request. After Stop it cancels the consumer, returns
// every request delivered but not yet taken to the queue (nack with
// requeue), and then returns ErrStopped; after Close, or once a borrowed
// connection has closed for good, it returns ErrClosed.
func (s *Server) Next() (Request, error) {
	for {
		if s.ctx.Err() != nil {
			return Request{}, ErrClosed
		}
		s.mu.Lock()
		sess, changed := s.sess, s.changed
		s.mu.Unlock()
		select {
		case <-s.stopping:
			s.drain(sess)
			return Request{}, ErrStopped
		default:
		}
		var deliveries <-chan amqp.Delivery
		if sess != nil {
			deliveries = sess.deliveries
		}
		select {
		case d, ok := <-deliveries:
			if ok && s.poison.poisonous(&d) {
				s.log.Error("amqprpc: rejected a request whose reply_to crashed the broker connection twice", "queue", s.cfg.Queue.Name, "reply_to", clip(d.ReplyTo, 80), "message_id", clip(d.MessageId, 64))
				_ = d.Reject(false)
				continue
			}
			if ok {
				return Request{Delivery: d, sess: sess}, nil
			}
			// The session is ending; wait until its goroutine replaces it.
			select {
			case <-changed:
			case <-s.stopping:
			case <-s.ctx.Done():
			case <-s.dead:
				return Request{}, ErrClosed
			}
		case <-changed:
		case <-s.stopping:
		case <-s.ctx.Done():
		case <-s.dead:
			return Request{}, ErrClosed
		}
	}
}

// drain cancels the consumer and requeues what it had delivered.
func (s *Server) drain(sess *serverSession) {
	if sess == nil || !s.drained.CompareAndSwap(false, true) {
		return
	}
	sess.syncMu.Lock()
	defer sess.syncMu.Unlock()
	if err := sess.ch.Cancel(sess.tag, false); err != nil {
		// The channel is gone, and with it every unacknowledged delivery
		// went back to the queue.
		return
	}
	n := 0
	for d := range sess.deliveries {
		_ = d.Nack(false, true)
		n++
	}
	if n > 0 {
		s.log.Info("amqprpc: returned prefetched requests to the queue", "queue", s.cfg.Queue.Name, "count", n)
	}
}

// Stop makes Next drain the consumer and end, and stops reconnecting.
// Replies to requests already taken can still be sent until Close.
func (s *Server) Stop() {
	s.stopOnce.Do(func() { close(s.stopping) })
}

// Respond publishes msg to the request's reply_to, when it has one, and then
// acknowledges the request; with confirms on, the acknowledgement waits for
// the broker's confirm of the reply (see settle for a refused one).
// A request whose session has ended is not acknowledged: the broker has
// already put it back in the queue.
func (s *Server) Respond(req *Request, msg *amqp.Publishing) error {
	if req.ReplyTo == "" {
		return ackRequest(req)
	}
	s.mu.Lock()
	cur := s.sess
	s.mu.Unlock()
	if cur == nil {
		return errorf("reply to %q: %w", req.ReplyTo, ErrNotConnected)
	}
	if risky(req.ReplyTo) {
		s.poison.replied(&req.Delivery)
	}
	if cur.confirms == nil {
		if err := cur.ch.Publish("", req.ReplyTo, false, false, *msg); err != nil {
			return errorf("reply to %q: %w", req.ReplyTo, err)
		}
		return ackRequest(req)
	}
	cur.pubMu.Lock()
	defer cur.pubMu.Unlock()
	tag := cur.ch.GetNextPublishSeqNo()
	if err := cur.ch.Publish("", req.ReplyTo, false, false, *msg); err != nil {
		return errorf("reply to %q: %w", req.ReplyTo, err)
	}
	cur.acks[tag] = req
	return nil
}

// ackRequest acknowledges req on the channel that delivered it.
func ackRequest(req *Request) error {
	if err := req.Ack(false); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return errorf("ack request: %w", err)
	}
	return nil
}

// Close stops consuming, closes the channel and any owned connection, and
// waits for the Server's goroutine. Unacknowledged requests go back to the
// queue. Close is idempotent.
func (s *Server) Close() error {
	s.Stop()
	s.cancel()
	<-s.stopped
	return nil
}

func (s *Server) run(sess *serverSession) {
	defer close(s.stopped)
	attempt := 0
	for {
		began := time.Now()
		err := s.watch(sess)
		s.setSession(nil)
		sess.close()
		if s.ctx.Err() != nil {
			return
		}
		s.log.Warn("amqprpc: server session lost", "queue", s.cfg.Queue.Name, "gen", sess.gen, "err", err)
		select {
		case <-s.stopping:
			// Draining: requests taken on the lost session cannot be
			// acknowledged on a new one, so there is nothing to reconnect for.
			<-s.ctx.Done()
			return
		default:
		}
		if time.Since(began) >= stableSession {
			attempt = 0
		}
		if sess, attempt = s.reconnect(sess.gen+1, attempt); sess == nil {
			return
		}
		s.log.Info("amqprpc: server reconnected", "queue", s.cfg.Queue.Name, "gen", sess.gen)
	}
}

func (s *Server) setSession(sess *serverSession) {
	s.mu.Lock()
	s.sess = sess
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// watch drains the session's notifications until it ends or Close is called.
func (s *Server) watch(sess *serverSession) error {
	for {
		select {
		case <-s.ctx.Done():
			return ErrClosed
		case conf, ok := <-sess.confirms:
			if ok {
				s.settle(sess, conf)
			}
		case b, ok := <-sess.blockings:
			if ok {
				s.log.Warn("amqprpc: connection.blocked changed", "blocked", b.Active, "reason", b.Reason)
			}
		case e, ok := <-sess.closes:
			if !ok || e == nil {
				return fmt.Errorf("%w: channel closed", ErrConnectionLost)
			}
			s.poison.crashed(e)
			return fmt.Errorf("%w: %w", ErrConnectionLost, e)
		}
	}
}

// settle acknowledges a request once its reply is confirmed. When the
// broker refuses the reply (a full reply queue that rejects publishes), the
// request goes back to the queue for one more try; refused again, it is
// acknowledged with its reply lost, so that no caller can make a service
// run one request over and over.
func (s *Server) settle(sess *serverSession, conf amqp.Confirmation) {
	sess.pubMu.Lock()
	req := sess.acks[conf.DeliveryTag]
	delete(sess.acks, conf.DeliveryTag)
	sess.pubMu.Unlock()
	switch {
	case req == nil:
	case conf.Ack:
		_ = ackRequest(req)
	case !req.Redelivered:
		_ = req.Nack(false, true)
	default:
		s.log.Warn("amqprpc: the broker refused a reply twice; the request is acknowledged and its reply lost",
			"queue", s.cfg.Queue.Name, "reply_to", clip(req.ReplyTo, 80), "correlation_id", clip(req.CorrelationId, 80))
		_ = ackRequest(req)
	}
}

func (s *Server) reconnect(gen uint64, first int) (*serverSession, int) {
	for attempt := first; ; attempt++ {
		t := time.NewTimer(s.cfg.Backoff.Delay(attempt))
		select {
		case <-s.ctx.Done():
			t.Stop()
			return nil, attempt
		case <-s.stopping:
			t.Stop()
			return nil, attempt
		case <-t.C:
		}
		if s.cfg.Conn != nil && s.cfg.Conn.IsClosed() {
			s.log.Error("amqprpc: the borrowed connection is closed; the server stops", "queue", s.cfg.Queue.Name)
			close(s.dead)
			return nil, attempt
		}
		sess, err := s.open(gen)
		if err != nil {
			s.log.Warn("amqprpc: server reconnect failed", "queue", s.cfg.Queue.Name, "attempt", attempt+1, "err", err)
			continue
		}
		s.setSession(sess)
		return sess, attempt + 1
	}
}

func (s *Server) open(gen uint64) (*serverSession, error) {
	sess := &serverSession{gen: gen, conn: s.cfg.Conn}
	if sess.conn == nil {
		conn, err := s.cfg.Dialer.Dial(s.ctx)
		if err != nil {
			return nil, err
		}
		sess.conn, sess.owned = conn, true
	}
	if err := s.setup(sess); err != nil {
		sess.close()
		return nil, err
	}
	return sess, nil
}

// setup opens the session's channel, declares the queue and starts the
// consumer, each step bounded in time.
func (s *Server) setup(sess *serverSession) (err error) {
	guard := time.AfterFunc(orDefault(s.cfg.OpenTimeout, DefaultDialTimeout), func() {
		if sess.owned {
			_ = sess.conn.CloseDeadline(time.Now())
		}
	})
	defer guard.Stop()

	if sess.ch, err = sess.conn.Channel(); err != nil {
		return errorf("open channel: %w", err)
	}
	if err = sess.ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return errorf("set prefetch %d: %w", s.cfg.Prefetch, err)
	}
	if s.cfg.Confirm {
		if err = sess.ch.Confirm(false); err != nil {
			return errorf("enable publisher confirms: %w", err)
		}
		sess.acks = make(map[uint64]*Request)
		sess.confirms = sess.ch.NotifyPublish(make(chan amqp.Confirmation, 256))
	}
	if err = declareQueue(sess.ch, s.cfg.Queue); err != nil {
		return err
	}
	sess.tag = consumerTag(s.cfg.Queue.Name)
	if sess.deliveries, err = sess.ch.Consume(s.cfg.Queue.Name, sess.tag, false, false, false, false, nil); err != nil {
		return errorf("consume %q: %w", s.cfg.Queue.Name, err)
	}
	sess.closes = sess.ch.NotifyClose(make(chan *amqp.Error, 1))
	if sess.owned {
		sess.blockings = sess.conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	}
	return nil
}

// declareQueue declares the request queue. A declaration that conflicts with
// the existing queue fails with the broker's PRECONDITION_FAILED text, which
// names the argument that differs.
func declareQueue(ch *amqp.Channel, q QueueConfig) error {
	args := amqp.Table{}
	durable := q.Durable
	kind := "classic"
	if q.Quorum {
		args["x-queue-type"] = "quorum"
		durable = true
		kind = "quorum"
	}
	if q.Expires > 0 {
		args["x-expires"] = q.Expires.Milliseconds()
	}
	if _, err := ch.QueueDeclare(q.Name, durable, false, false, false, args); err != nil {
		return errorf("declare %s queue %q (durable=%v): %w", kind, q.Name, durable, err)
	}
	return nil
}

// consumerTag names a consumer so an operator can tell amqprpc servers apart
// in the management UI.
func consumerTag(queue string) string {
	tag := "amqprpc-server-" + queue
	if len(tag) > 200 {
		tag = tag[:200]
	}
	return tag + "-" + uuid.NewString()
}

func (sess *serverSession) close() {
	if sess.owned {
		closeConn(sess.conn) // also ends a drain waiting on the broker
		return
	}
	if sess.ch != nil {
		sess.syncMu.Lock()
		_ = sess.ch.Close()
		sess.syncMu.Unlock()
	}
}
