package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// session is one connection (owned, or borrowed) and one channel on it,
// with what a Client or Server set up on that channel. Its notification
// channels are drained by the supervisor's goroutine until it ends.
type session struct {
	gen   uint64
	conn  *amqp.Connection
	owned bool
	ch    *amqp.Channel

	// Set up by the side (see Client.setup and Server.setup).
	deliveries <-chan amqp.Delivery
	replyTo    string           // a Client's reply queue
	tag        string           // a Server's consumer tag
	acks       *acks            // a Server's answered requests, without confirms
	returns    chan amqp.Return // a Client's returned requests
	cancels    chan string      // a Server's consumer cancelled by the broker
	control    *amqp.Channel    // a Server's control channel, nil without (control.go)

	closes    chan *amqp.Error
	abandoned chan error             // capacity 1: the side gave the session up (Client.Reopen)
	blocks    chan amqp.Blocking     // nil on a borrowed connection
	blocked   atomic.Pointer[string] // the reason while connection.blocked is on
	confirms  *confirmQueue          // nil without confirms

	// syncMu serializes the synchronous methods that two goroutines can run
	// on ch (a Server's basic.cancel during a drain or round trip, the
	// supervisor's channel.close): amqp091-go hands replies to waiters in
	// turn, and two waiters at once can hang.
	syncMu sync.Mutex

	endOnce sync.Once
	ended   chan struct{} // closed once the session has ended
	endErr  error         // why it ended; set before ended closes
}

// openSession makes a session: the connection (unless borrowed), a channel,
// confirm mode when asked for, then the side's own setup. Every step is
// bounded by openTimeout, and by ctx: a broker that stops answering fails
// the attempt.
func (sv *supervisor) openSession(ctx context.Context, gen uint64) (*session, error) {
	s := &session{gen: gen, conn: sv.cfg.Conn, ended: make(chan struct{}), abandoned: make(chan error, 1)}
	if s.conn == nil {
		conn, err := sv.cfg.Dial(ctx)
		if err != nil {
			return nil, err
		}
		s.conn, s.owned = conn, true
	}
	giveUp := func() {
		if s.owned {
			_ = s.conn.CloseDeadline(time.Now())
		}
	}
	guard := time.AfterFunc(sv.cfg.OpenTimeout, giveUp)
	stop := context.AfterFunc(ctx, giveUp)
	err := sv.setup(s)
	guard.Stop()
	stop()
	if ctx.Err() != nil {
		err = errorf("connect: %w", ctx.Err()) // the setup failed for it, or would have
	}
	if err != nil {
		s.close()
		return nil, err
	}
	if sv.cfg.Confirm {
		s.confirms = newConfirmQueue(s, sv.side.settle)
	}
	return s, nil
}

// setup opens the session's channel and hands it to the side.
func (sv *supervisor) setup(s *session) (err error) {
	if s.ch, err = s.conn.Channel(); err != nil {
		return errorf("open channel: %w", err)
	}
	if sv.cfg.Confirm {
		if err = s.ch.Confirm(false); err != nil {
			return errorf("enable publisher confirms: %w", err)
		}
	}
	if err = sv.side.setup(s); err != nil {
		return err
	}
	s.closes = s.ch.NotifyClose(make(chan *amqp.Error, 1))
	if s.owned {
		s.blocks = s.conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	}
	return nil
}

// publish sends msg to the default exchange. It holds no lock of ours while
// it writes: amqp091-go serializes the channel's writes itself, and with
// confirms on it tracks the message's confirm for us.
func (s *session) publish(queue string, mandatory bool, msg *amqp.Publishing, p pendingConfirm) error {
	if s.confirms == nil {
		return s.ch.Publish("", queue, mandatory, false, *msg)
	}
	dc, err := s.ch.PublishWithDeferredConfirm("", queue, mandatory, false, *msg)
	if err != nil {
		return err
	}
	p.dc = dc
	s.confirms.push(p)
	return nil
}

// broken reports whether a publish failed because the channel or the
// connection is gone: closed, or its socket failed, after which amqp091-go
// shuts the connection down (on a goroutine of its own, so it may not show
// as closed yet). Any other error is the message's own.
func (s *session) broken(err error) bool {
	var netErr net.Error
	switch {
	case errors.Is(err, amqp.ErrClosed), s.ch.IsClosed(), s.conn.IsClosed(),
		errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET):
		return true
	}
	return false
}

// abandon asks the supervisor to end the session with why; the first
// request stands.
func (s *session) abandon(why error) {
	select {
	case s.abandoned <- why:
	default:
	}
}

// end records why the session ended; the first reason stands.
func (s *session) end(err error) {
	s.endOnce.Do(func() {
		s.endErr = err
		close(s.ended)
	})
}

// roundTrip makes a synchronous call on the channel (basic.qos with the
// prefetch it has), so that it returns only once the broker has handled
// everything published on the channel before it, or the session is gone.
func (s *session) roundTrip(prefetch int) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	return s.ch.Qos(prefetch, 0, false)
}

// close releases the session: its owned connection, or else its channel.
// Either way amqp091-go resolves every confirm still awaited, and the
// confirm queue's goroutine ends.
func (s *session) close() {
	s.end(ErrClosed)
	if s.owned {
		if !s.conn.IsClosed() {
			_ = s.conn.CloseDeadline(time.Now().Add(closeTimeout))
		}
	} else if s.ch != nil {
		if s.control != nil {
			_ = s.control.Close()
		}
		s.syncMu.Lock()
		_ = s.ch.Close()
		s.syncMu.Unlock()
	}
	if s.confirms != nil {
		<-s.confirms.done
	}
}

// closeTimeout bounds the close handshake with the broker.
const closeTimeout = 2 * time.Second
