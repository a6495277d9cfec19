package amqprpc

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/transport"
)

// DefaultControlWait is how long [Ping], [Info] and [Stats] collect
// answers, unless [WithControlWait] says otherwise.
const DefaultControlWait = time.Second

// ControlOption configures [Ping], [Info] and [Stats]. Every [Option] is
// one, so that [WithTLSConfig], [WithURLs], [WithHeartbeat] and
// [WithConnectionName] apply to them as to [Dial].
type ControlOption interface{ applyControl(*controlOptions) }

type controlOptions struct {
	options
	wait     time.Duration
	instance string
}

type control func(*controlOptions)

func (f control) applyControl(o *controlOptions) { f(o) }
func (f both) applyControl(o *controlOptions)    { f(&o.options) }
func (hooksOption) applyControl(*controlOptions) {}

// WithControlWait sets how long [Ping], [Info] and [Stats] collect answers
// (default [DefaultControlWait]). Asked about one service, they stop as
// soon as every consumer of its queue has answered; asked about one
// instance, as soon as it has.
func WithControlWait(d time.Duration) ControlOption {
	return control(func(o *controlOptions) { o.wait = d })
}

// WithInstance makes [Ping], [Info] and [Stats] ask only the instance
// whose id is id.
func WithInstance(id string) ControlOption {
	return control(func(o *controlOptions) { o.instance = id })
}

// Ping asks every server instance of queue, or of every service when queue
// is "", who it is ([ControlPing]), and returns the answers, sorted by
// service and instance id. It connects to the broker at url for the
// question, and collects answers for [DefaultControlWait] or until ctx ends;
// an instance that does not answer in that time is left out. No instance
// is no error: the result is then empty.
func Ping(ctx context.Context, url, queue string, opts ...ControlOption) ([]Instance, error) {
	return ask(ctx, ControlPing, url, queue, opts)
}

// Info is [Ping] with [ControlInfo]: each instance's host, process id, start
// time, prefetch and calls in flight too.
func Info(ctx context.Context, url, queue string, opts ...ControlOption) ([]Instance, error) {
	return ask(ctx, ControlInfo, url, queue, opts)
}

// Stats is [Ping] with [ControlStats]: [Info]'s fields, and per method the
// calls each instance has answered, how many failed, their processing
// time and the last error, for a health check or a dashboard.
func Stats(ctx context.Context, url, queue string, opts ...ControlOption) ([]Instance, error) {
	return ask(ctx, ControlStats, url, queue, opts)
}

// ask publishes one control request of type typ and decodes the answers.
func ask(ctx context.Context, typ, url, queue string, opts []ControlOption) ([]Instance, error) {
	o := &controlOptions{options: defaultOptions(), wait: DefaultControlWait}
	for _, opt := range opts {
		if opt == nil {
			return nil, errNilOption
		}
		opt.applyControl(o)
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	switch {
	case o.wait <= 0:
		return nil, fmt.Errorf("amqprpc: WithControlWait(%v): want more than 0", o.wait)
	case len(o.instance) > maxInstanceID:
		return nil, fmt.Errorf("amqprpc: WithInstance: an id of %d bytes; ids have at most %d", len(o.instance), maxInstanceID)
	}
	if queue != "" {
		if err := checkQueueName(queue); err != nil {
			return nil, err
		}
	}
	conn, err := o.transport(nil, url).Dial(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	q, asked, err := controlQuery(conn, typ, queue, o)
	if err != nil || !asked {
		return nil, err
	}
	answers, err := transport.Gather(ctx, conn, q)
	if err != nil {
		return nil, fmt.Errorf("amqprpc: %s of %s: %w", typ, cmp.Or(queue, "every service"), err)
	}
	return decodeInstances(answers, queue, o.instance), nil
}

// controlQuery addresses a control request: to one instance, every
// instance of queue, or every instance. asked is false when queue does not
// exist, so that no instance can serve it.
func controlQuery(conn *amqp.Connection, typ, queue string, o *controlOptions) (q transport.Query, asked bool, err error) {
	q = transport.Query{Exchange: ControlExchange, Key: controlKeyAll, Type: typ, Wait: o.wait}
	switch {
	case o.instance != "":
		q.Key, q.Expect = controlKeyInstance+o.instance, 1
	case queue != "":
		st, err := transport.QueueStateOf(conn, queue)
		if err != nil {
			return q, false, err
		}
		if !st.Exists {
			return q, false, nil
		}
		if key, ok := serviceKey(queue); ok {
			// Only its instances answer: as many as it has consumers.
			q.Key, q.Expect = key, st.Consumers
		}
	}
	return q, true, nil
}

// decodeInstances decodes the answers, keeping one per instance, of queue
// and instance id when they are not "", sorted by service and id. An
// answer that is an error reply or not a JSON object is left out.
func decodeInstances(answers []amqp.Delivery, queue, id string) []Instance {
	var out []Instance
	seen := make(map[string]bool)
	for _, d := range answers {
		if _, failed := d.Headers[ErrorHeader]; failed {
			continue
		}
		var in Instance
		if err := json.Unmarshal(d.Body, &in); err != nil || in.ID == "" || seen[in.ID] {
			continue
		}
		if (queue != "" && in.Service != queue) || (id != "" && in.ID != id) {
			continue
		}
		seen[in.ID] = true
		in.Raw = json.RawMessage(d.Body)
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b Instance) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.ID, b.ID))
	})
	return out
}
