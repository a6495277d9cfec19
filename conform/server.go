package conform

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// conformServer serves the conformance service on amqp091-go directly, as
// a server in another language would. With edges it adds the edge cases
// of conform client; it passes conform server with or without them. The
// tests break it on purpose with faults.
type conformServer struct {
	prefetch int
	edges    bool
	faults   serverFaults
	log      io.Writer

	logMu sync.Mutex     // guards writes to log
	mu    sync.Mutex     // guards runs
	runs  map[string]int // Record's token -> how many times it ran
	slots chan struct{}  // one per request running, with the fault workers

	url      string        // of the broker, for the raw publisher
	finished chan struct{} // with edges, closed once the client records done

	answered, strays, repeats atomic.Int64

	control *serverControl // the control protocol (servercontrol.go); nil when off
}

// serverFaults break a conformServer on purpose, for the tests that show
// which checks of conform server find what. The command never sets them.
type serverFaults struct {
	dropCorrelationID bool // replies carry no correlation_id
	cutCorrelationID  bool // replies carry the first 64 bytes of it
	errorInBody       bool // error replies carry the text as a JSON body, no x-rpc-error
	echoContentType   bool // replies carry the request's content_type as it came
	cutInsideRune     bool // long error texts are cut at 3072 bytes, characters or not
	noPing            bool // amqprpc.ping is just an unknown service
	noDefaultMethod   bool // requests without a type are refused
	replyToOnReply    bool // replies carry the request's reply_to
	trailingNewline   bool // JSON bodies end with a newline, as Python's json.dump(s) + "\n" would
	takeAll           bool // no prefetch limit: the server takes every request at once
	replyTwice        bool // every reply is published twice
	extraProperties   bool // replies carry message_id, app_id and a timestamp
	extraHeader       bool // replies carry a header beside x-rpc-error
	cutAbove          int  // error texts are cut only when longer than this (0: 3072)
	cutMarker         string
	requeueNoReplyTo  bool // a request without reply_to is put back once after it ran
	neverAckNoReplyTo bool // a request without reply_to runs and is never acknowledged
	workers           int  // at most this many requests run at once (0: all it holds)
	pingDecodes       bool // a ping's body must be JSON
	pingAnyType       bool // a ping is answered before its content type is looked at
	echoAnyJSON       bool // Echo takes any JSON value, and echoes its text
	firstDot          bool // Service.Method is split at the first dot

	// The control protocol (servercontrol.go).
	controlNoAll       bool // the control queue is not bound under "all"
	controlNoInstance  bool // nor under "instance:ID"
	controlNoCounts    bool // STATS lists no method
	controlDirect      bool // control requests with a direct reply-to are answered
	controlCallData    bool // answers carry the last request's body
	controlUnknownType bool // a request of an unknown type gets a PING answer
	controlNoMetadata  bool // answers have no metadata
}

// batchWindow is how long the server waits after a request for more to
// answer with it, last first.
const batchWindow = 20 * time.Millisecond

// conformConsumerTag is the consumer tag of the conformance server.
const conformConsumerTag = "amqprpc-conform-client"

// serve declares and consumes queue until ctx ends, calling ready once it
// consumes, then waits for its delayed replies. It returns an error only
// when it cannot start.
func (s *conformServer) serve(ctx context.Context, url, queue string, ready func()) error {
	conn, err := amqp.DialConfig(url, amqp.Config{
		Dial:       amqp.DefaultDial(10 * time.Second),
		Properties: amqp.Table{"connection_name": "amqprpc conform client"},
	})
	if err != nil {
		return fmt.Errorf("cannot connect to the broker: %w", err)
	}
	defer conn.Close()
	s.url = url
	s.slots = make(chan struct{}, max(s.faults.workers, 1))
	ch, deliveries, err := s.consume(conn, queue)
	if err != nil {
		return err
	}
	defer s.startControl(conn, queue)() // servercontrol.go
	if ready != nil {
		ready()
	}

	var delayed sync.WaitGroup // Sleep replies still to send
	defer delayed.Wait()
	maxBatch := max(s.prefetch, 1)
	for {
		var first amqp.Delivery
		select {
		case <-ctx.Done():
			_ = ch.Cancel(conformConsumerTag, false)
			return nil
		case <-s.finished: // nil, never ready, without edges
			_ = ch.Cancel(conformConsumerTag, false)
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return nil // the connection is gone: nothing left to answer
			}
			first = d
		}
		batch := collectBatch(first, deliveries, maxBatch)
		s.answerBatch(ctx, ch, batch, &delayed)
	}
}

// consume opens a channel on conn, declares queue (durable, auto-delete),
// sets the server's prefetch and starts consuming queue.
func (s *conformServer) consume(conn *amqp.Connection, queue string) (*amqp.Channel, <-chan amqp.Delivery, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, err
	}
	if _, err := ch.QueueDeclare(queue, true, true, false, false, nil); err != nil {
		return nil, nil, fmt.Errorf("declare queue %q (durable, auto-delete): %w; use a queue name of its own", queue, err)
	}
	prefetch := s.prefetch
	if s.faults.takeAll {
		prefetch = 0
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return nil, nil, err
	}
	deliveries, err := ch.Consume(queue, conformConsumerTag, false, false, false, false, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("consume queue %q: %w", queue, err)
	}
	return ch, deliveries, nil
}

// collectBatch returns first and the requests that arrive within
// batchWindow after it, up to maxBatch in all.
func collectBatch(first amqp.Delivery, deliveries <-chan amqp.Delivery, maxBatch int) []amqp.Delivery {
	batch := []amqp.Delivery{first}
	window := time.NewTimer(batchWindow)
	defer window.Stop()
	for len(batch) < maxBatch {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return batch
			}
			batch = append(batch, d)
		case <-window.C:
			return batch
		}
	}
	return batch
}

// answerBatch runs the requests of batch, last first with edges, and
// replies to each at once or, for a delayed outcome, later.
func (s *conformServer) answerBatch(ctx context.Context, ch *amqp.Channel, batch []amqp.Delivery, delayed *sync.WaitGroup) {
	for i := range batch {
		d := batch[i]
		if s.edges {
			d = batch[len(batch)-1-i] // last first
		}
		if !s.acquire(ctx) {
			_ = d.Nack(false, true) // stopping: back to the queue
			continue
		}
		taken := time.Now()
		s.control.took(&d)
		out := s.run(&d)
		out.taken = taken
		if out.delay == 0 {
			s.reply(ch, &d, out)
			s.release()
			continue
		}
		delayed.Add(1)
		go func() {
			defer delayed.Done()
			defer s.release()
			s.replyAfter(ctx, ch, &d, out)
		}()
	}
}

// acquire takes one of the workers a server with the fault workers has,
// waiting for one, and reports false if ctx ends first.
func (s *conformServer) acquire(ctx context.Context) bool {
	if s.faults.workers == 0 {
		return true
	}
	select {
	case s.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// release gives back what acquire took.
func (s *conformServer) release() {
	if s.faults.workers > 0 {
		<-s.slots
	}
}

// replyAfter replies to d once out.delay has passed, or, if ctx ends
// first, puts d back on the queue.
func (s *conformServer) replyAfter(ctx context.Context, ch *amqp.Channel, d *amqp.Delivery, out outcome) {
	t := time.NewTimer(out.delay)
	defer t.Stop()
	select {
	case <-t.C:
		s.reply(ch, d, out)
	case <-ctx.Done():
		_ = d.Nack(false, true) // stopping: back to the queue
	}
}
