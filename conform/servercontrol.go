package conform

// The conformance server's side of the control protocol (docs/PROTOCOL.md
// §13), on amqp091-go alone, as a server in another language would do it:
// a control queue bound under the three keys, and PING, INFO and STATS
// answered from counters of the calls it serves.

import (
	"crypto/rand"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc"
)

// maxLastError bounds a method's last_error (§13).
const maxLastError = 512

// cutText cuts s to at most n bytes on a character boundary.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// serverControl is what a conformServer says about itself.
type serverControl struct {
	id, queue string
	prefetch  int
	started   time.Time
	faults    serverFaults

	mu       sync.Mutex // guards the counters
	methods  map[string]*methodStats
	refused  int64
	inFlight int64
	lastBody []byte // for the controlCallData fault
}

// startControl sets up the control queue on a channel of its own on conn
// and answers it until stop, which waits for its goroutine. When it cannot
// (a user without the permissions), it logs that and serves without it.
func (s *conformServer) startControl(conn *amqp.Connection, queue string) (stop func()) {
	c := &serverControl{id: strings.ToLower(rand.Text()[:16]), queue: queue, prefetch: s.prefetch,
		started: time.Now().UTC(), faults: s.faults, methods: map[string]*methodStats{}}
	ch, deliveries, err := c.open(conn)
	if err != nil {
		s.logf("control protocol off: %v", err)
		return func() {}
	}
	s.control = c
	done := make(chan struct{})
	go func() {
		defer close(done)
		for d := range deliveries {
			c.answer(ch, &d)
		}
	}()
	return func() {
		ch.Close()
		<-done
	}
}

// open declares the exchange and the control queue, binds and consumes it.
func (c *serverControl) open(conn *amqp.Connection) (*amqp.Channel, <-chan amqp.Delivery, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, err
	}
	keys := []string{controlKeyService + c.queue}
	if !c.faults.controlNoAll {
		keys = append(keys, controlKeyAll)
	}
	if !c.faults.controlNoInstance {
		keys = append(keys, controlKeyInstance+c.id)
	}
	err = ch.ExchangeDeclare(controlExchange, "direct", false, true, false, false, nil)
	var q amqp.Queue
	if err == nil {
		q, err = ch.QueueDeclare("", false, true, true, false, nil)
	}
	for _, key := range keys {
		if err == nil {
			err = ch.QueueBind(q.Name, key, controlExchange, false, nil)
		}
	}
	var deliveries <-chan amqp.Delivery
	if err == nil {
		deliveries, err = ch.Consume(q.Name, "", true, true, false, false, nil)
	}
	if err != nil {
		ch.Close()
		return nil, nil, err
	}
	return ch, deliveries, nil
}

// answer answers one control request.
func (c *serverControl) answer(ch *amqp.Channel, d *amqp.Delivery) {
	if d.ReplyTo == "" || (strings.HasPrefix(d.ReplyTo, directReplyTo) && !c.faults.controlDirect) {
		return
	}
	msg := amqp.Publishing{CorrelationId: d.CorrelationId, ContentType: jsonContentType}
	doc := c.document(d.Type)
	if doc == nil {
		msg.Headers = amqp.Table{errorHeader: "amqprpc: unknown control request type " + d.Type}
	} else {
		msg.Body, _ = json.Marshal(doc)
	}
	_ = ch.Publish("", d.ReplyTo, false, false, msg)
}

// document is the answer to a request of type typ, nil for an unknown one.
func (c *serverControl) document(typ string) map[string]any {
	if c.faults.controlUnknownType && typ != "INFO" && typ != "STATS" {
		typ = "PING"
	}
	if typ != "PING" && typ != "INFO" && typ != "STATS" {
		return nil
	}
	host, _ := os.Hostname()
	doc := map[string]any{"type": typ, "service": c.queue, "id": c.id, "version": "", "metadata": map[string]string{}}
	if c.faults.controlNoMetadata {
		delete(doc, "metadata")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.faults.controlCallData {
		doc["last_request"] = string(c.lastBody)
	}
	if typ == "PING" {
		return doc
	}
	doc["host"], doc["pid"], doc["started"] = host, os.Getpid(), c.started.Format(time.RFC3339Nano)
	doc["prefetch"], doc["in_flight"] = c.prefetch, c.inFlight
	if typ == "STATS" {
		doc["refused"], doc["methods"] = c.refused, c.methodList()
	}
	return doc
}

// methodList is STATS' methods, sorted by name. Called with c.mu held.
func (c *serverControl) methodList() []map[string]any {
	list := []map[string]any{}
	if c.faults.controlNoCounts {
		return list
	}
	for _, name := range slices.Sorted(maps.Keys(c.methods)) {
		m := c.methods[name]
		avg := int64(0)
		if m.Calls > 0 {
			avg = m.ProcessingTime / m.Calls
		}
		list = append(list, map[string]any{"name": name, "calls": m.Calls, "errors": m.Errors,
			"processing_time_ns": m.ProcessingTime, "average_processing_time_ns": avg, "last_error": m.LastError})
	}
	return list
}

// took counts a request the server has taken.
func (c *serverControl) took(d *amqp.Delivery) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.inFlight++
	c.lastBody = d.Body
	c.mu.Unlock()
}

// count counts a request whose reply is about to be published: under its
// method, among the refused, or not at all for a ping.
func (c *serverControl) count(d *amqp.Delivery, out outcome) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inFlight--
	refused := strings.HasPrefix(out.errText, "rpc: ") ||
		strings.HasPrefix(out.errText, "amqprpc: unsupported content type") ||
		strings.HasPrefix(out.errText, "amqprpc: request has no type")
	switch {
	case d.Type == amqprpc.PingType:
	case refused:
		c.refused++
	default:
		method := d.Type
		if method == "" {
			method = defaultMethod
		}
		m := c.methods[method]
		if m == nil {
			m = &methodStats{Name: method}
			c.methods[method] = m
		}
		m.Calls++
		m.ProcessingTime += int64(time.Since(out.taken))
		if out.errText != "" {
			m.Errors++
			m.LastError = cutText(out.errText, maxLastError)
		}
	}
}
