package conform

// The checks of the control protocol (docs/PROTOCOL.md §13), which run
// when ServerOptions.Control asks for them: a server may or may not take
// part in it. They ask over the raw wire, from a channel and a reply queue
// of their own, as an asker in another language would.

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// What the control protocol names (§13).
const (
	controlExchange    = "amqprpc.control"
	controlKeyAll      = "all"
	controlKeyService  = "service:"
	controlKeyInstance = "instance:"
	maxInstanceID      = 200
)

// controlChecks are the checks of the control protocol, in the order they
// run, after serverChecks. docs/PROTOCOL.md §13 lists them.
var controlChecks = []Check{
	{"control-ping", "§13", "a PING to service:QUEUE is answered with a JSON object holding type PING, service QUEUE, an instance id, a version string and a metadata object of strings", checkControlPing},
	{"control-instance", "§13", "a PING to instance:ID is answered by that instance", checkControlInstance},
	{"control-all", "§13", "a PING to all is answered by the instance too", checkControlAll},
	{"control-info", "§13", "an INFO answer adds host, pid, started (RFC 3339), prefetch (the server's) and in_flight", checkControlInfo},
	{"control-stats", "§13", "a STATS answer counts every call once per method (calls, errors, processing time, last error) and every refused request once", checkControlStats},
	{"control-unknown-type", "§13", "a control request of an unknown type gets the error amqprpc: unknown control request type", checkControlUnknownType},
	{"control-direct-reply-to", "§13", "a control request whose reply_to is direct reply-to gets no answer", checkControlDirectReplyTo},
	{"control-no-call-data", "§13", "no control answer carries the argument or the result of a call", checkControlNoCallData},
}

// controlAsker publishes control requests and reads their answers, on a
// channel of its own: answers on a private reply queue, and direct
// reply-to consumed too, to see what comes there.
type controlAsker struct {
	ch       *amqp.Channel
	replyTo  string
	answers  <-chan amqp.Delivery
	direct   <-chan amqp.Delivery
	returns  <-chan amqp.Return
	prefix   string
	seq      int
	instance string // the id control-ping found
}

// asker returns the checker's control asker, set up on first use.
func (k *checker) asker() (*controlAsker, error) {
	if k.control != nil {
		return k.control, nil
	}
	ch, err := k.conn.Channel()
	if err != nil {
		return nil, err
	}
	a := &controlAsker{ch: ch, prefix: k.token + "-control"}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err == nil {
		a.replyTo = q.Name
		a.answers, err = ch.Consume(q.Name, "", true, true, false, false, nil)
	}
	if err == nil {
		a.direct, err = ch.Consume(directReplyTo, "", true, false, false, false, nil)
	}
	if err != nil {
		ch.Close()
		return nil, fmt.Errorf("set up a control reply queue: %w", err)
	}
	a.returns = ch.NotifyReturn(make(chan amqp.Return, 4))
	k.control = a
	return a, nil
}

// send publishes a control request of type typ under key, with reply_to
// replyTo ("" for the asker's reply queue), and returns its correlation id.
func (a *controlAsker) send(key, typ, replyTo string, timeout time.Duration) (string, error) {
	a.seq++
	id := a.prefix + "." + strconv.Itoa(a.seq)
	msg := amqp.Publishing{Type: typ, ReplyTo: a.replyTo, CorrelationId: id, Expiration: strconv.FormatInt(timeout.Milliseconds(), 10)}
	if replyTo != "" {
		msg.ReplyTo = replyTo
	}
	if err := a.ch.Publish(controlExchange, key, true, false, msg); err != nil {
		return "", fmt.Errorf("publish a %s control request: %w", typ, err)
	}
	return id, nil
}

// await waits for the answer to request id from the instance from ("" for
// any), skipping others. It reads the answer's document into doc.
func (a *controlAsker) await(id, key, from string, timeout time.Duration) (amqp.Delivery, map[string]json.RawMessage, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case d := <-a.answers:
			if d.CorrelationId != id {
				continue
			}
			doc, err := controlDoc(d)
			if err != nil {
				return d, nil, err
			}
			if from != "" && jsonText(doc["id"]) != from {
				continue // another instance
			}
			return d, doc, nil
		case r := <-a.returns:
			if r.CorrelationId == id {
				return amqp.Delivery{}, nil, fmt.Errorf("the broker returned the request: nothing is bound to %s under %q", controlExchange, key)
			}
		case <-t.C:
			return amqp.Delivery{}, nil, fmt.Errorf("no answer under %q within %v", key, timeout)
		}
	}
}

// ask sends a request and waits for the answer of the instance from.
func (k *checker) ask(key, typ, from string) (map[string]json.RawMessage, error) {
	a, err := k.asker()
	if err != nil {
		return nil, err
	}
	id, err := a.send(key, typ, "", k.timeout)
	if err != nil {
		return nil, err
	}
	_, doc, err := a.await(id, key, from, k.timeout)
	if err == nil && jsonText(doc["type"]) != typ {
		err = fmt.Errorf("the answer's type is %s; want %q", doc["type"], typ)
	}
	return doc, err
}

// askInstance asks the instance control-ping found, through the service
// key.
func (k *checker) askInstance(typ string) (map[string]json.RawMessage, error) {
	if k.control == nil || k.control.instance == "" {
		return nil, errors.New("no instance id: control-ping did not pass")
	}
	return k.ask(controlKeyService+k.queue, typ, k.control.instance)
}

// controlDoc reads an answer: JSON, a JSON object, no x-rpc-error.
func controlDoc(d amqp.Delivery) (map[string]json.RawMessage, error) {
	if e, ok := d.Headers[errorHeader]; ok {
		return nil, fmt.Errorf("an error answer, x-rpc-error %.100q", fmt.Sprint(e))
	}
	if d.ContentType != jsonContentType {
		return nil, fmt.Errorf("the answer's content_type is %q; want %q", d.ContentType, jsonContentType)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(d.Body, &doc); err != nil || doc == nil {
		return nil, fmt.Errorf("the answer %.80q is not a JSON object", d.Body)
	}
	return doc, nil
}

func checkControlPing(k *checker) error {
	doc, err := k.ask(controlKeyService+k.queue, "PING", "")
	if err != nil {
		return err
	}
	id := jsonText(doc["id"])
	switch {
	case jsonText(doc["service"]) != k.queue:
		return fmt.Errorf("service is %.80s; want %q", doc["service"], k.queue)
	case id == "" || len(id) > maxInstanceID:
		return fmt.Errorf("the instance id %.80s is not a string of 1 to %d bytes", doc["id"], maxInstanceID)
	}
	k.control.instance = id // for the other checks, whatever else is wrong here
	return wantKinds(doc, "type", "string", "service", "string", "id", "string", "version", "string", "metadata", "object of strings")
}

func checkControlInstance(k *checker) error {
	if k.control == nil || k.control.instance == "" {
		return errors.New("no instance id: control-ping did not pass")
	}
	_, err := k.ask(controlKeyInstance+k.control.instance, "PING", k.control.instance)
	return err
}

func checkControlAll(k *checker) error {
	if k.control == nil || k.control.instance == "" {
		return errors.New("no instance id: control-ping did not pass")
	}
	_, err := k.ask(controlKeyAll, "PING", k.control.instance)
	return err
}

func checkControlInfo(k *checker) error {
	doc, err := k.askInstance("INFO")
	if err != nil {
		return err
	}
	if err := wantKinds(doc, "host", "string", "pid", "integer", "started", "string", "prefetch", "integer", "in_flight", "integer"); err != nil {
		return err
	}
	if _, err := time.Parse(time.RFC3339Nano, jsonText(doc["started"])); err != nil {
		return fmt.Errorf("started %s is not an RFC 3339 time", doc["started"])
	}
	if n := jsonInt(doc["prefetch"]); n != int64(k.prefetch) {
		return fmt.Errorf("prefetch is %d; want %d, the server's", n, k.prefetch)
	}
	if n := jsonInt(doc["in_flight"]); n < 0 {
		return fmt.Errorf("in_flight is %d", n)
	}
	return nil
}

func checkControlUnknownType(k *checker) error {
	a, err := k.asker()
	if err != nil {
		return err
	}
	key := controlKeyService + k.queue
	id, err := a.send(key, "CONFORM-UNKNOWN", "", k.timeout)
	if err != nil {
		return err
	}
	d, _, err := a.await(id, key, "", k.timeout)
	if err == nil {
		return fmt.Errorf("a document %.80q; want an error answer", d.Body)
	}
	text, _ := d.Headers[errorHeader].(string)
	switch {
	case d.CorrelationId == "":
		return err // no answer at all
	case !strings.HasPrefix(text, "amqprpc: unknown control request type"):
		return fmt.Errorf("x-rpc-error %.100q; want it to start with %q", text, "amqprpc: unknown control request type")
	case len(d.Body) > 0:
		return fmt.Errorf("the error answer has a body %.40q; want none", d.Body)
	}
	return nil
}

func checkControlDirectReplyTo(k *checker) error {
	a, err := k.asker()
	if err != nil {
		return err
	}
	if k.control.instance == "" {
		return errors.New("no instance id: control-ping did not pass")
	}
	if _, err := a.send(controlKeyService+k.queue, "PING", directReplyTo, k.timeout); err != nil {
		return err
	}
	// An answer to the next request shows the first was dealt with; an
	// answer to it through direct reply-to would be on its way.
	if _, err := k.askInstance("PING"); err != nil {
		return err
	}
	t := time.NewTimer(300 * time.Millisecond)
	defer t.Stop()
	select {
	case d := <-a.direct:
		return fmt.Errorf("an answer came through direct reply-to (%.60q); want none", d.Body)
	case <-t.C:
		return nil
	}
}

func checkControlNoCallData(k *checker) error {
	secret := k.token + "-control-secret-argument"
	r, err := k.private.call(k.echo(secret), k.timeout)
	if err != nil {
		return err
	}
	if err := wantValue(r, secret); err != nil {
		return err
	}
	for _, typ := range []string{"PING", "INFO", "STATS"} {
		doc, err := k.askInstance(typ)
		if err != nil {
			return err
		}
		for name, v := range doc {
			if strings.Contains(string(v), secret) {
				return fmt.Errorf("the %s answer's %q holds the argument of a call", typ, name)
			}
		}
	}
	return nil
}

// wantKinds checks that doc has each of the fields of pairs (name, kind):
// "string", "integer", "object of strings" or "array"; none may be null.
func wantKinds(doc map[string]json.RawMessage, pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		name, kind := pairs[i], pairs[i+1]
		raw, ok := doc[name]
		if !ok {
			return fmt.Errorf("the answer has no field %q", name)
		}
		if !isKind(raw, kind) {
			return fmt.Errorf("the field %q is %.40s; want a JSON %s", name, raw, kind)
		}
	}
	return nil
}

func isKind(raw json.RawMessage, kind string) bool {
	if string(raw) == "null" {
		return false
	}
	var err error
	switch kind {
	case "string":
		var s string
		err = json.Unmarshal(raw, &s)
	case "integer":
		var n int64
		err = json.Unmarshal(raw, &n)
	case "object of strings":
		var m map[string]string
		err = json.Unmarshal(raw, &m)
	case "array":
		var a []json.RawMessage
		err = json.Unmarshal(raw, &a)
	}
	return err == nil
}

// jsonText is a JSON string's text, "" for anything else.
func jsonText(raw json.RawMessage) string {
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

// jsonInt is a JSON integer, 0 for anything else.
func jsonInt(raw json.RawMessage) int64 {
	var n int64
	_ = json.Unmarshal(raw, &n)
	return n
}

// sortedNames reports whether names are in order.
func sortedNames(names []string) bool { return slices.IsSorted(names) }
