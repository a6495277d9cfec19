package conform

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// directReplyTo is RabbitMQ's pseudo-queue for direct reply-to.
const directReplyTo = "amq.rabbitmq.reply-to"

// caller sends requests the way docs/PROTOCOL.md says a client does, with
// amqp091-go and nothing of amqprpc, and matches replies to them by
// correlation id. It receives replies on a private reply queue of its own,
// or through direct reply-to on the channel it publishes on. Each check
// has callers of its own, so that nothing another check sent reaches it.
type caller struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	queue   string // the service queue
	replyTo string // what requests name in reply_to
	private string // the private reply queue's name; "" with direct reply-to
	prefix  string // of the correlation ids it makes
	seq     atomic.Uint64

	mu       sync.Mutex            // guards the fields below
	waiting  map[string]chan reply // by correlation id; buffered, capacity 1
	replies  map[string]int        // correlation id of a request sent -> replies to it
	answered map[string]bool       // requests whose reply was taken, or given up on
	strays   []string              // correlation ids of replies to no request sent

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
	c := &caller{conn: conn, ch: ch, queue: queue, replyTo: directReplyTo, prefix: prefix,
		waiting: make(map[string]chan reply), replies: make(map[string]int),
		answered: make(map[string]bool), done: make(chan struct{})}
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
// waiting for its correlation id, and counts every reply, until the
// channel closes.
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
		}
		if _, sent := c.replies[r.CorrelationId]; sent && !r.returned {
			c.replies[r.CorrelationId]++
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
	} else {
		c.giveUp(id) // no reply is wanted
	}
	if err := c.ch.Publish("", c.queue, true, false, msg); err != nil {
		c.forget(id)
		return "", nil, fmt.Errorf("publish: %w", err)
	}
	return id, w, nil
}

// watch starts waiting for a reply with correlation id, sent by someone
// else (a request published on another connection), and counts replies
// to it from now on.
func (c *caller) watch(id string) <-chan reply {
	w := make(chan reply, 1)
	c.mu.Lock()
	c.waiting[id] = w
	if _, ok := c.replies[id]; !ok {
		c.replies[id] = 0
	}
	c.mu.Unlock()
	return w
}

// forget stops waiting for id, and expects no reply to it.
func (c *caller) forget(id string) {
	c.mu.Lock()
	delete(c.waiting, id)
	c.answered[id] = true
	c.mu.Unlock()
}

// giveUp marks id as a request whose reply is not waited for.
func (c *caller) giveUp(id string) {
	c.mu.Lock()
	c.answered[id] = true
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
			return reply{}, c.noReply(id, timeout.Round(time.Millisecond))
		}
	}
	c.giveUp(id)
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

// noReply says that no reply to id came within timeout, what came
// instead, and what the broker says of the queue.
func (c *caller) noReply(id string, timeout time.Duration) error {
	c.mu.Lock()
	strays := c.strays
	c.mu.Unlock()
	text := fmt.Sprintf("no reply with the request's correlation_id within %v", timeout)
	for _, s := range strays {
		if s != id && strings.HasPrefix(id, s) || s == "" {
			return fmt.Errorf("%s; a reply came with a correlation_id of %d bytes (%s), where the request's has %d: "+
				"a reply must carry the request's correlation_id byte for byte", text, len(s), describePrefix(s, id), len(id))
		}
	}
	switch n := len(strays); {
	case n == 1:
		text += fmt.Sprintf("; a reply with correlation_id %.40q came instead", strays[0])
	case n > 1:
		text += fmt.Sprintf("; %d replies with other correlation_ids came instead, such as %.40q", n, strays[n-1])
	}
	return errors.New(text + queueNote(c.conn, c.queue))
}

// describePrefix says how got, a prefix of want, relates to it.
func describePrefix(got, want string) string {
	if got == "" {
		return "empty"
	}
	return fmt.Sprintf("its first %d", len(got))
}

// queueNote says what the broker says of queue, for a message about a
// reply that did not come: requests waiting in it while the server holds
// others mean that the server takes no more.
func queueNote(conn *amqp.Connection, queue string) string {
	q, err := inspectOn(conn, queue)
	switch {
	case err != nil:
		return ""
	case !q.exists:
		return fmt.Sprintf("; the queue %q is gone", queue)
	case q.consumers == 0:
		return fmt.Sprintf("; nothing consumes the queue %q any more", queue)
	case q.messages > 0:
		return fmt.Sprintf("; %s wait in the queue with %s: the server takes no more, so it holds requests it has not acknowledged (§6)",
			plural(q.messages, "request"), plural(q.consumers, "consumer"))
	}
	return fmt.Sprintf("; no request waits in the queue, which has %s", plural(q.consumers, "consumer"))
}

// outstanding returns how many requests sent with a reply_to are neither
// answered nor given up on.
func (c *caller) outstanding() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for id, got := range c.replies {
		if got == 0 && !c.answered[id] {
			n++
		}
	}
	return n
}

// anyReply reports whether a reply to any of calls has come.
func (c *caller) anyReply(calls []sleepCall) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, call := range calls {
		if c.replies[call.id] > 0 {
			return true
		}
	}
	return false
}

// counts returns the requests that got more than one reply, with how many,
// and the correlation ids of replies to no request sent.
func (c *caller) counts() (repeated map[string]int, strays []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	repeated = make(map[string]int)
	for id, n := range c.replies {
		if n > 1 {
			repeated[id] = n
		}
	}
	return repeated, append([]string(nil), c.strays...)
}

// close closes the channel and waits for the dispatching goroutine.
func (c *caller) close() {
	c.ch.Close()
	<-c.done
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
