package conform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/rpc"
	"slices"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// flowSteps are the steps a client calls one at a time, before the
// concurrent ones.
var flowSteps = []string{stepPlain, stepNoContentType, stepEmptyType, stepExtra, stepError, stepErrorBody, stepErrorEmpty, stepDelayed}

// serveClientCheck runs ServeClient on a new queue until the client flow
// ends, stop is called or the test's budget ends, and returns the queue
// and where its report will come.
func serveClientCheck(t *testing.T, url string) (queue string, reports <-chan *ClientReport, stop func()) {
	t.Helper()
	queue = brokertest.Queue(t, url, "conform-client")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	ready := make(chan struct{})
	out := make(chan *ClientReport, 1)
	go func() {
		defer cancel()
		report, err := ServeClient(ctx, url, queue, ClientOptions{Ready: func() { close(ready) }})
		if err != nil {
			t.Errorf("ServeClient = %v", err)
		}
		out <- report
	}()
	t.Cleanup(func() {
		cancel()
		<-ready
	})
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("ServeClient did not consume within 20s")
	}
	return queue, out, cancel
}

// verdictOf waits for ServeClient's report and returns the names of the
// checks that failed, logging why.
func verdictOf(t *testing.T, reports <-chan *ClientReport, stop func()) []string {
	t.Helper()
	var report *ClientReport
	select {
	case report = <-reports:
	case <-time.After(10 * time.Second): // the client gave up without done
		stop()
		report = <-reports
	}
	if report == nil {
		t.Fatal("ServeClient gave no report")
	}
	var failed []string
	for _, r := range report.Failures() {
		failed = append(failed, r.Name)
		t.Logf("client check %s failed: %v", r.Name, r.Err)
	}
	return failed
}

// goFlow runs the client flow with an amqprpc client.
func goFlow(client *rpc.Client) error {
	record := func(step, result string, err error) error {
		token := step + " ok " + result
		var se rpc.ServerError
		if errors.As(err, &se) {
			token = step + " error " + string(se)
		} else if err != nil {
			return err
		}
		return client.Call("Conformance.Record", token, new(int))
	}
	for _, step := range flowSteps {
		var s string
		if err := record(step, s, client.Call("Conformance.Echo", step, &s)); err != nil {
			return err
		}
	}
	calls := make([]*rpc.Call, concurrentSteps)
	for i := range calls {
		calls[i] = client.Go("Conformance.Echo", fmt.Sprint(stepConcurrent, i), new(string), make(chan *rpc.Call, 1))
	}
	for i, c := range calls {
		<-c.Done
		if err := record(fmt.Sprint(stepConcurrent, i), *c.Reply.(*string), c.Error); err != nil {
			return err
		}
	}
	return client.Call("Conformance.Record", flowDone, new(int))
}

// TestClientGo: an amqprpc client passes every client check, through
// either reply mode.
func TestClientGo(t *testing.T) {
	url := brokertest.URL(t)
	for _, mode := range []struct {
		name string
		opts []amqprpc.ClientOption
	}{
		{"private-queue", nil},
		{"direct-reply-to", []amqprpc.ClientOption{amqprpc.WithDirectReplyTo()}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			queue, reports, stop := serveClientCheck(t, url)
			opts := append([]amqprpc.ClientOption{amqprpc.WithEncoding(codec.JSON), amqprpc.WithCallTimeout(10 * time.Second)}, mode.opts...)
			client := brokertest.Dial(t, amqprpc.Dial, url, queue, opts...)
			if err := goFlow(client); err != nil {
				t.Errorf("the client flow = %v", err)
			}
			if failed := verdictOf(t, reports, stop); len(failed) > 0 {
				t.Errorf("ServeClient failed the amqprpc client on %q; want every check passed", failed)
			}
		})
	}
}

// clientFaults break the raw client of TestBrokenClients on purpose.
type clientFaults struct {
	takeStray      bool // a call takes the next reply, whatever its correlation_id
	crashOnRepeat  bool // a second reply to an answered call ends the client
	ignoreError    bool // x-rpc-error is not looked at: the body is the result
	strictJSONType bool // only content_type application/json is JSON
}

// rawClient is a client written from PROTOCOL.md on amqp091-go, with
// faults.
type rawClient struct {
	ch       *amqp.Channel
	queue    string
	replyTo  string
	replies  <-chan amqp.Delivery
	faults   clientFaults
	seq      int
	answered map[string]bool
	early    map[string]amqp.Delivery // replies that came before their call was waited for
}

func newRawClient(t *testing.T, url, queue string, faults clientFaults) *rawClient {
	t.Helper()
	_, ch := brokertest.Conn(t, url)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &rawClient{ch: ch, queue: queue, replyTo: q.Name, replies: brokertest.Consume(t, ch, q.Name), faults: faults,
		answered: map[string]bool{}, early: map[string]amqp.Delivery{}}
}

func (c *rawClient) send(method string, arg any) (string, error) {
	c.seq++
	id := "raw-" + strconv.Itoa(c.seq)
	body, _ := json.Marshal(arg)
	return id, c.ch.Publish("", c.queue, false, false, amqp.Publishing{
		CorrelationId: id, ReplyTo: c.replyTo, Type: method, ContentType: "application/json", Body: body, Expiration: "10000"})
}

// await returns the outcome of the call id: "ok <string>" or "error <text>".
func (c *rawClient) await(id string) (string, error) {
	for {
		d, ok := c.early[id]
		if ok {
			delete(c.early, id)
		} else {
			select {
			case d = <-c.replies:
			case <-time.After(10 * time.Second):
				return "", fmt.Errorf("no reply to %s", id)
			}
		}
		if c.answered[d.CorrelationId] {
			if c.faults.crashOnRepeat {
				return "", fmt.Errorf("a second reply to %s", d.CorrelationId)
			}
			continue
		}
		if d.CorrelationId != id && !c.faults.takeStray {
			if len(d.CorrelationId) > 4 && d.CorrelationId[:4] == "raw-" {
				c.early[d.CorrelationId] = d
			}
			continue
		}
		c.answered[d.CorrelationId] = true
		return c.outcome(d), nil
	}
}

func (c *rawClient) outcome(d amqp.Delivery) string {
	if text, ok := d.Headers[errorHeader]; ok && !c.faults.ignoreError {
		return "error " + fmt.Sprint(text)
	}
	if c.faults.strictJSONType && d.ContentType != "application/json" {
		return "error content_type " + d.ContentType
	}
	var s string
	_ = json.Unmarshal(d.Body, &s)
	return "ok " + s
}

func (c *rawClient) call(method string, arg any) (string, error) {
	id, err := c.send(method, arg)
	if err != nil {
		return "", err
	}
	return c.await(id)
}

// flow runs the client flow.
func (c *rawClient) flow() error {
	record := func(token string) error {
		_, err := c.call("Conformance.Record", token)
		return err
	}
	for _, step := range flowSteps {
		out, err := c.call("Conformance.Echo", step)
		if err == nil {
			err = record(step + " " + out)
		}
		if err != nil {
			return err
		}
	}
	var ids []string
	for i := range concurrentSteps {
		id, err := c.send("Conformance.Echo", fmt.Sprint(stepConcurrent, i))
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	for i, id := range ids {
		out, err := c.await(id)
		if err == nil {
			err = record(fmt.Sprint(stepConcurrent, i, " ", out))
		}
		if err != nil {
			return err
		}
	}
	return record(flowDone)
}

// TestBrokenClients: a client written from PROTOCOL.md passes; broken in
// one way, it fails the checks of what it breaks.
func TestBrokenClients(t *testing.T) {
	url := brokertest.URL(t)
	for _, tt := range []struct {
		name   string
		faults clientFaults
		want   []string
	}{
		{"conformant", clientFaults{}, nil},
		{"takes-stray-replies", clientFaults{takeStray: true}, []string{"plain", "content-type-absent", "content-type-empty",
			"extra-properties", "error-reply", "error-with-body", "error-empty", "delayed", "concurrent"}},
		{"crashes-on-a-repeat", clientFaults{crashOnRepeat: true}, []string{"content-type-absent", "content-type-empty",
			"extra-properties", "error-reply", "error-with-body", "error-empty", "delayed", "concurrent", "done"}},
		{"ignores-errors", clientFaults{ignoreError: true}, []string{"error-reply", "error-with-body", "error-empty"}},
		{"json-content-type-only", clientFaults{strictJSONType: true}, []string{"content-type-absent", "content-type-empty"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			queue, reports, stop := serveClientCheck(t, url)
			c := newRawClient(t, url, queue, tt.faults)
			err := c.flow()
			t.Logf("the raw client's flow ended with %v", err)
			if failed := verdictOf(t, reports, stop); !slices.Equal(failed, tt.want) {
				t.Errorf("ServeClient failed a client that %s on %q; want %q", tt.name, failed, tt.want)
			}
		})
	}
}
