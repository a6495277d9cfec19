package transport

import (
	"context"
	"errors"
	"fmt"
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
	Config
	Queue QueueConfig
	// Prefetch bounds the requests delivered and not yet acknowledged.
	Prefetch int
	// Lost, when set, is told why each session ended (the broker's
	// *amqp.Error, when it sent one, is wrapped), on the Server's goroutine.
	Lost func(err error)
	// Control, when set, makes the Server answer control requests on a
	// channel of its own (see ControlConfig).
	Control *ControlConfig
}

// Request is a delivery from the request queue, tied to the session that
// delivered it: it can only be acknowledged there.
type Request struct {
	amqp.Delivery
	sess *session
}

// Server consumes a request queue and publishes replies, through one
// session at a time that a supervisor keeps up. Next is called by one
// reader goroutine; Respond, Reject and AckAnswered from any (RespondAlone
// asks for no publishing meanwhile).
type Server struct {
	sv       *supervisor
	cfg      ServerConfig
	stopping chan struct{} // closed by Stop
	stopOnce sync.Once
	drained  atomic.Bool // Next has cancelled the consumer and drained it

	controls    sync.WaitGroup // the goroutines answering control requests (control.go)
	controlWarn sync.Once      // logs that the control queue could not be set up
}

// NewServer connects, declares the queue and starts consuming. A first
// connection that fails is an error, and so is one that ctx ends first
// (it wraps ctx's cause); ctx bounds only the first connection.
func NewServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	s := &Server{cfg: cfg, stopping: make(chan struct{})}
	if cfg.Logger != nil {
		cfg.Logger = cfg.Logger.With("queue", cfg.Queue.Name)
	}
	sv, err := newSupervisor(cfg.Config, s, "server")
	if err != nil {
		return nil, err
	}
	s.sv = sv
	if err := sv.connect(ctx); err != nil {
		return nil, err
	}
	sv.begin()
	return s, nil
}

// Next returns the next request. After Stop it cancels the consumer, returns
// every request delivered but not yet taken to the queue (nack with
// requeue), and then returns an error; after Close, or once a borrowed
// connection has closed for good, it returns ErrClosed.
func (s *Server) Next() (Request, error) {
	for {
		sess, changed, err := s.sv.current()
		if err != nil && !errors.Is(err, ErrNotConnected) {
			return Request{}, ErrClosed
		}
		select {
		case <-s.stopping:
			s.drain(sess)
			return Request{}, errStopped
		default:
		}
		var deliveries <-chan amqp.Delivery
		if sess != nil {
			deliveries = sess.deliveries
		}
		select {
		case d, ok := <-deliveries:
			if !ok {
				// The session is ending; wait until the supervisor says so.
				deliveries = nil
				select {
				case <-changed:
				case <-s.stopping:
				case <-s.sv.ctx.Done():
				}
				continue
			}
			return Request{Delivery: d, sess: sess}, nil
		case <-changed:
		case <-s.stopping:
		case <-s.sv.ctx.Done():
		}
	}
}

// drain cancels the consumer and requeues what it had delivered.
func (s *Server) drain(sess *session) {
	if sess == nil || !s.drained.CompareAndSwap(false, true) {
		return
	}
	sess.syncMu.Lock()
	err := sess.ch.Cancel(sess.tag, false)
	sess.syncMu.Unlock()
	if err != nil {
		// The channel is gone, and with it every unacknowledged delivery
		// went back to the queue.
		return
	}
	n := 0
	for d := range sess.deliveries {
		_ = d.Nack(false, true)
		if sess.acks != nil {
			sess.acks.settledElse(d.DeliveryTag)
		}
		n++
	}
	if n > 0 {
		s.sv.log.Info("amqprpc: returned prefetched requests to the queue", "queue", s.cfg.Queue.Name, "count", n)
	}
}

// Stop makes Next drain the consumer and end, and stops reconnecting.
// Replies to requests already taken can still be sent until Close.
func (s *Server) Stop() {
	s.stopOnce.Do(func() { close(s.stopping) })
	s.sv.stopRetrying()
}

// Respond publishes msg to the request's reply_to, when it has one, and
// marks the request answered: AckAnswered acknowledges it. With confirms on
// it is acknowledged once the broker has confirmed the reply instead (see
// settle for a refused one). A request whose session has ended is not
// acknowledged: the broker has already put it back in the queue. Respond
// holds no lock while it writes.
func (s *Server) Respond(req *Request, msg *amqp.Publishing) error {
	if req.ReplyTo == "" {
		return s.answered(req)
	}
	sess, _, err := s.sv.current()
	if err != nil {
		return errorf("reply to %.80q: %w", req.ReplyTo, err)
	}
	return s.respondOn(sess, req, msg)
}

func (s *Server) respondOn(sess *session, req *Request, msg *amqp.Publishing) error {
	if err := sess.publish(req.ReplyTo, false, msg, pendingConfirm{req: req}); err != nil {
		_ = s.Reject(req, true) // never a gap in the acknowledged runs
		return errorf("reply to %.80q: %w", req.ReplyTo, err)
	}
	if sess.confirms == nil {
		return s.answered(req)
	}
	return nil
}

// answered acknowledges req, or records it for AckAnswered.
func (s *Server) answered(req *Request) error {
	if req.sess == nil || req.sess.acks == nil {
		return ackRequest(req)
	}
	req.sess.acks.answered(req.DeliveryTag)
	return nil
}

// AckAnswered acknowledges the requests answered so far on the current
// session, a run of them with one basic.ack where it can. Call it after
// each batch of Respond calls, from any goroutine.
func (s *Server) AckAnswered() error {
	sess, _, err := s.sv.current()
	if err != nil || sess.acks == nil {
		return nil // a lost session's requests went back to the queue
	}
	if err := sess.flushAcks(); err != nil {
		return errorf("ack requests: %w", err)
	}
	return nil
}

// Reject gives req up: back to the queue with requeue, else to the
// broker to discard (or dead-letter, where the queue says so). Requests
// answered after req and held unacknowledged behind it are acknowledged
// at once.
func (s *Server) Reject(req *Request, requeue bool) error {
	if err := req.Nack(false, requeue); err != nil {
		return errorf("reject request: %w", err)
	}
	if sess := req.sess; sess != nil && sess.acks != nil {
		sess.acks.settledElse(req.DeliveryTag)
		if err := sess.flushAcks(); err != nil {
			return errorf("ack requests: %w", err)
		}
	}
	return nil
}

// RespondAlone is Respond for a reply that may make the broker close the
// connection (RabbitMQ 3.10 closes it with 541 INTERNAL_ERROR for a direct
// reply-to name it cannot decode). First it settles what was answered
// before: it acknowledges the requests answered so far (with confirms on,
// it waits a while for the confirms of the replies published so far,
// which acknowledge theirs), so that a crash cannot send them back to the
// queue to run again. Then it makes a round trip to the broker, so that
// nothing published or acknowledged earlier is still on its way, publishes
// the reply, and makes one more; it reports closedIt when the connection
// was sound before the reply and the broker closed it with 541 right
// after: the reply closed it. The caller must not publish on the Server
// meanwhile.
func (s *Server) RespondAlone(req *Request, msg *amqp.Publishing) (closedIt bool, err error) {
	if req.ReplyTo == "" {
		return false, s.answered(req)
	}
	sess, _, err := s.sv.current()
	if err != nil {
		return false, errorf("reply to %.80q: %w", req.ReplyTo, err)
	}
	if err := sess.settleAnswered(); err != nil {
		return false, errorf("reply to %.80q: %w: %w", req.ReplyTo, ErrNotConnected, err)
	}
	if err := sess.roundTrip(s.cfg.Prefetch); err != nil {
		return false, errorf("reply to %.80q: %w: %w", req.ReplyTo, ErrNotConnected, err)
	}
	if err := s.respondOn(sess, req, msg); err != nil {
		return false, err
	}
	if sess.roundTrip(s.cfg.Prefetch) == nil {
		return false, nil
	}
	t := time.NewTimer(endWait)
	defer t.Stop()
	select {
	case <-sess.ended:
	case <-t.C:
		return false, errorf("reply to %.80q: %w: the round trip after it failed", req.ReplyTo, ErrNotConnected)
	}
	var e *amqp.Error
	if errors.As(sess.endErr, &e) && e.Code == amqp.InternalError {
		return true, errorf("reply to %.80q made the broker close the connection: %w", req.ReplyTo, sess.endErr)
	}
	return false, errorf("reply to %.80q: %w", req.ReplyTo, sess.endErr)
}

// endWait bounds how long RespondAlone waits to learn why a session ended.
const endWait = 5 * time.Second

// ackRequest acknowledges req on the channel that delivered it.
func ackRequest(req *Request) error {
	if err := req.Ack(false); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return errorf("ack request: %w", err)
	}
	return nil
}

// Close stops consuming, acknowledges what is answered, closes the channel
// and any owned connection, and waits for the Server's goroutines.
// Unacknowledged requests go back to the queue. Close is idempotent.
func (s *Server) Close() error {
	s.Stop()
	_ = s.AckAnswered()
	if sess, _, err := s.sv.current(); err == nil && sess.confirms != nil {
		// Requests whose replies are published are acknowledged once
		// confirmed; closing first would put them back in the queue.
		sess.confirms.settled(closeTimeout)
	}
	s.sv.close()
	s.controls.Wait() // each ends with its session's channel
	return nil
}

// settle acknowledges a request once its reply is confirmed. When the
// broker refuses the reply (a full reply queue that rejects publishes), the
// request goes back to the queue for one more try; refused again, it is
// acknowledged with its reply lost, so that no caller can make a service
// run one request over and over.
func (s *Server) settle(_ *session, p pendingConfirm, ack bool) {
	req := p.req
	switch {
	case ack:
		_ = ackRequest(req)
	case !req.Redelivered:
		_ = req.Nack(false, true)
	default:
		s.sv.log.Warn("amqprpc: the broker refused a reply twice; the request is acknowledged and its reply lost",
			"reply_to", fmt.Sprintf("%.80s", req.ReplyTo), "correlation_id", fmt.Sprintf("%.80s", req.CorrelationId))
		_ = ackRequest(req)
	}
}

// setup sets the prefetch, declares the queue and starts the consumer.
func (s *Server) setup(sess *session) (err error) {
	if err = sess.ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return errorf("set prefetch %d: %w", s.cfg.Prefetch, err)
	}
	if !s.cfg.Confirm {
		sess.acks = newAcks(s.cfg.Prefetch)
	}
	if err = declareQueue(sess.ch, s.cfg.Queue); err != nil {
		return err
	}
	sess.cancels = sess.ch.NotifyCancel(make(chan string, 1))
	sess.tag = consumerTag(s.cfg.Queue.Name)
	if sess.deliveries, err = sess.ch.Consume(s.cfg.Queue.Name, sess.tag, false, false, false, false, nil); err != nil {
		return errorf("consume %q: %w", s.cfg.Queue.Name, err)
	}
	s.startControl(sess) // never fails the session
	return nil
}

func (s *Server) lost(_ *session, err error) {
	if s.cfg.Lost != nil {
		s.cfg.Lost(err)
	}
}

func (s *Server) returned(*amqp.Return) {} // replies are not mandatory
func (s *Server) ready(*session)        {}
func (s *Server) ended(error)           {} // Next returns ErrClosed

// declareQueue declares the request queue. A declaration that conflicts with
// the existing queue fails with the broker's PRECONDITION_FAILED text, which
// names the argument that differs, and the option that matches the queue
// (declare.go).
func declareQueue(ch *amqp.Channel, q QueueConfig) error {
	args := amqp.Table{}
	durable, kind := q.Durable, "classic"
	if q.Quorum {
		args["x-queue-type"] = "quorum"
		durable, kind = true, "quorum"
	}
	if q.Expires > 0 {
		args["x-expires"] = q.Expires.Milliseconds()
	}
	if _, err := ch.QueueDeclare(q.Name, durable, false, false, false, args); err != nil {
		if hint := declareHint(err); hint != "" {
			return errorf("declare %s queue %q (durable=%v): %w; %s", kind, q.Name, durable, err, hint)
		}
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
