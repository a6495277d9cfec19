package conform

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// directReplyTo is RabbitMQ's pseudo-queue for direct reply-to.
const directReplyTo = "amq.rabbitmq.reply-to"

// caller sends requests the way docs/PROTOCOL.md says a client does, with
// amqp091-go and nothing of amqprpc, and matches replies to them by
// correlation id. It receives replies on a private reply queue, or through
// direct reply-to on the channel it publishes on.
type caller struct {
	ch      *amqp.Channel
	queue   string // the service queue
	replyTo string // what requests name in reply_to
	private string // the private reply queue's name; "" with direct reply-to
	prefix  string // of the correlation ids it makes
	seq     atomic.Uint64

	mu      sync.Mutex            // guards waiting and strays
	waiting map[string]chan reply // by correlation id; buffered, capacity 1
	strays  []string              // correlation ids of replies to no call waiting

	done chan struct{} // closed when the dispatching goroutine has ended
}

// reply is a reply as it arrived, or a request the broker returned.
type reply struct {
	amqp.Delivery
	returned bool
	at       time.Time
}

// request is one request to send. An empty method or content type is
// left out of the message; noReplyTo leaves reply_to out.
type request struct {
	method, contentType string
	body                []byte
	correlationID       string // made up when empty
	noReplyTo           bool
	expiration          string // "" for the caller's default
}

// newCaller opens a channel on conn and starts consuming replies: on a new
// private reply queue, or through direct reply-to when direct is set.
func newCaller(conn *amqp.Connection, queue, prefix string, direct bool) (*caller, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	c := &caller{ch: ch, queue: queue, replyTo: directReplyTo, prefix: prefix,
		waiting: make(map[string]chan reply), done: make(chan struct{})}
	if !direct {
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			ch.Close()
			return nil, fmt.Errorf("declare a reply queue: %w", err)
		}
		c.replyTo, c.private = q.Name, q.Name
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 8))
	deliveries, err := ch.Consume(c.replyTo, "", true, false, false, false, nil)
	if err != nil {
		ch.Close()
		return nil, fmt.Errorf("consume %s: %w", c.replyTo, err)
	}
	go c.dispatch(deliveries, returns)
	return c, nil
}

// dispatch hands each reply, and each returned request, to the call
// waiting for its correlation id, until the channel closes.
func (c *caller) dispatch(deliveries <-chan amqp.Delivery, returns <-chan amqp.Return) {
	defer close(c.done)
	for deliveries != nil || returns != nil {
		var r reply
		select {
		case d, ok := <-deliveries:
			if !ok {
				deliveries = nil
				continue
			}
			r = reply{Delivery: d, at: time.Now()}
		case ret, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			r = reply{Delivery: amqp.Delivery{CorrelationId: ret.CorrelationId}, returned: true, at: time.Now()}
		}
		c.mu.Lock()
		w, ok := c.waiting[r.CorrelationId]
		if ok {
			delete(c.waiting, r.CorrelationId)
		} else if !r.returned {
			c.strays = append(c.strays, r.CorrelationId)
		}
		c.mu.Unlock()
		if ok {
			w <- r
		}
	}
}

// send publishes req and returns its correlation id and where its reply
// will come.
func (c *caller) send(req request, timeout time.Duration) (string, <-chan reply, error) {
	id := req.correlationID
	if id == "" {
		id = c.prefix + "." + strconv.FormatUint(c.seq.Add(1), 10)
	}
	w := c.watch(id)
	msg := amqp.Publishing{
		CorrelationId: id,
		Type:          req.method,
		ContentType:   req.contentType,
		Body:          req.body,
		Expiration:    req.expiration,
	}
	if msg.Expiration == "" {
		msg.Expiration = strconv.FormatInt(timeout.Milliseconds(), 10)
	}
	if !req.noReplyTo {
		msg.ReplyTo = c.replyTo
	}
	if err := c.ch.Publish("", c.queue, true, false, msg); err != nil {
		c.forget(id)
		return "", nil, fmt.Errorf("publish: %w", err)
	}
	return id, w, nil
}

// watch starts waiting for a reply with correlation id, sent by someone
// else (a request published on another connection).
func (c *caller) watch(id string) <-chan reply {
	w := make(chan reply, 1)
	c.mu.Lock()
	c.waiting[id] = w
	c.mu.Unlock()
	return w
}

// forget stops waiting for id.
func (c *caller) forget(id string) {
	c.mu.Lock()
	delete(c.waiting, id)
	c.mu.Unlock()
}

// await waits up to timeout for the reply to id on w.
// A reply already there is taken even when the time is up.
func (c *caller) await(id string, w <-chan reply, timeout time.Duration) (reply, error) {
	var r reply
	select {
	case r = <-w:
	default:
		t := time.NewTimer(max(timeout, 0))
		defer t.Stop()
		select {
		case r = <-w:
		case <-t.C:
			c.forget(id)
			return reply{}, c.noReply(timeout.Round(time.Millisecond))
		}
	}
	if r.returned {
		return r, fmt.Errorf("the broker returned the request: no queue %q", c.queue)
	}
	return r, nil
}

// call sends req and waits up to timeout for its reply.
func (c *caller) call(req request, timeout time.Duration) (reply, error) {
	id, w, err := c.send(req, timeout)
	if err != nil {
		return reply{}, err
	}
	return c.await(id, w, timeout)
}

// noReply says that no reply came, and what came instead.
func (c *caller) noReply(timeout time.Duration) error {
	c.mu.Lock()
	strays := c.strays
	c.strays = nil
	c.mu.Unlock()
	text := fmt.Sprintf("no reply with the request's correlation_id within %v", timeout)
	switch n := len(strays); {
	case n == 0:
		return errors.New(text)
	case n == 1:
		return fmt.Errorf("%s (a reply with correlation_id %.40q came instead)", text, strays[0])
	default:
		return fmt.Errorf("%s (%d replies with other correlation_ids came instead, such as %.40q)", text, n, strays[n-1])
	}
}

// close closes the channel and waits for the dispatching goroutine.
func (c *caller) close() {
	c.ch.Close()
	<-c.done
}
