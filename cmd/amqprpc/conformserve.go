package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc"
)

const conformClientHelp = `Usage: amqprpc conform client [flags] QUEUE

Serves the conformance service of docs/PROTOCOL.md §9 on QUEUE, with the
edge cases a client must cope with, so that a client in any language can
run its calls against it:

  - before each reply, a stray reply to the same reply_to with a
    correlation_id no call has (as a late reply to a call that timed out
    would be), holding a value the client must not take;
  - after each reply, the same reply again (as after a redelivery, §6);
  - requests that arrive together are answered last first (replies out of
    order);
  - Conformance.Fail answers with an error reply (x-rpc-error);
  - Conformance.Sleep answers after the time it is given (a delayed reply).

It declares QUEUE (durable and auto-delete: the broker deletes it once
this command stops), prints one line per request, and runs until it is
interrupted or -for has passed. A client should get exactly the results
PROTOCOL.md §9 gives for each call, and see the stray and repeated replies
only as replies to no call of its own.

Example:
  amqprpc conform client conformance &
  python3 examples/interop/python/client.py --conformance --queue conformance
`

const conformClientExitHelp = `
Exit status: 0 served until interrupted or -for passed; 2 usage error; 3
could not serve (no broker, queue declared otherwise).
`

// runConformClient is amqprpc conform client.
func runConformClient(args []string, stdout, stderr io.Writer) int {
	const cmd = "amqprpc conform client"
	fs := newFlagSet("conform client")
	var f connectFlags
	fs.StringVar(&f.url, "url", "", "broker `URL` (default $AMQP_URL, else "+defaultURL+")")
	prefetch := fs.Int("prefetch", 10, "requests held, and answered, at once")
	forTime := fs.Duration("for", 0, "stop after this long (0: run until interrupted)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelpWith(fs, conformClientHelp, conformClientExitHelp, stdout)
			return exitOK
		}
		return usageError(stderr, cmd, err.Error())
	}
	if fs.NArg() != 1 {
		return usageError(stderr, cmd, "want QUEUE, got "+plural(fs.NArg(), "argument"))
	}
	queue := fs.Arg(0)
	if problem := checkQueue(queue); problem != "" {
		return usageError(stderr, cmd, problem)
	}
	if *prefetch < 1 || *prefetch > 1000 {
		return usageError(stderr, cmd, fmt.Sprintf("-prefetch %d: want 1 to 1000", *prefetch))
	}
	f.timeout = time.Second // unused, but check wants a valid one
	url, err := f.check()
	if err != nil {
		code, line := failure(cmd, "", err)
		fmt.Fprintln(stderr, line)
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *forTime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *forTime)
		defer cancel()
	}
	s := &conformServer{prefetch: *prefetch, edges: true, log: stdout}
	ready := func() {
		fmt.Fprintf(stdout, "serving the conformance service on queue %q with edge cases (prefetch %d); Ctrl-C to stop\n", queue, *prefetch)
	}
	if err := s.serve(ctx, url, queue, ready); err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", cmd, withoutPassword(err.Error(), url))
		return exitTransit
	}
	fmt.Fprintf(stdout, "stopped: answered %s, with %d stray and %d repeated replies\n",
		plural(int(s.answered.Load()), "request"), s.strays.Load(), s.repeats.Load())
	return exitOK
}

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

	answered, strays, repeats atomic.Int64
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
}

// batchWindow is how long the server waits after a request for more to
// answer with it, last first.
const batchWindow = 20 * time.Millisecond

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
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(queue, true, true, false, false, nil); err != nil {
		return fmt.Errorf("declare queue %q (durable, auto-delete): %w; use a queue name of its own", queue, err)
	}
	prefetch := s.prefetch
	if s.faults.takeAll {
		prefetch = 0
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return err
	}
	const tag = "amqprpc-conform-client"
	deliveries, err := ch.Consume(queue, tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume queue %q: %w", queue, err)
	}
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
			_ = ch.Cancel(tag, false)
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return nil // the connection is gone: nothing left to answer
			}
			first = d
		}
		batch := []amqp.Delivery{first}
		window := time.NewTimer(batchWindow)
	collect:
		for len(batch) < maxBatch {
			select {
			case d, ok := <-deliveries:
				if !ok {
					break collect
				}
				batch = append(batch, d)
			case <-window.C:
				break collect
			}
		}
		window.Stop()
		for i := range batch {
			d := batch[i]
			if s.edges {
				d = batch[len(batch)-1-i] // last first
			}
			out := s.run(&d)
			if out.delay == 0 {
				s.reply(ch, &d, out)
				continue
			}
			delayed.Add(1)
			go func() {
				defer delayed.Done()
				t := time.NewTimer(out.delay)
				defer t.Stop()
				select {
				case <-t.C:
					s.reply(ch, &d, out)
				case <-ctx.Done():
					_ = d.Nack(false, true) // stopping: back to the queue
				}
			}()
		}
	}
}

// outcome is what a request gets: a JSON body or an error text, after
// delay.
type outcome struct {
	body    []byte
	errText string
	delay   time.Duration
}

func failed(format string, args ...any) outcome {
	return outcome{errText: fmt.Sprintf(format, args...)}
}

// run serves one request as docs/PROTOCOL.md says.
func (s *conformServer) run(d *amqp.Delivery) outcome {
	mediaType, _, _ := strings.Cut(d.ContentType, ";")
	if mt := strings.TrimSpace(mediaType); mt != "" && !strings.EqualFold(mt, jsonContentType) {
		return failed("amqprpc: unsupported content type %.64q (want %q)", d.ContentType, jsonContentType)
	}
	method := d.Type
	if method == amqprpc.PingType && !s.faults.noPing {
		return outcome{body: jsonString("pong")}
	}
	if method == "" && !s.faults.noDefaultMethod {
		method = defaultMethod
	}
	if method == "" {
		return failed("amqprpc: request has no type and the server has no default method")
	}
	dot := strings.LastIndex(method, ".")
	if dot < 0 {
		return failed("rpc: service/method request ill-formed: %s", method)
	}
	if method[:dot] != "Conformance" {
		return failed("rpc: can't find service %s", method)
	}
	var str string
	var num int
	var add struct{ A, B int }
	arg, ok := map[string]any{"Echo": &str, "Fail": &str, "Record": &str, "Count": &str, "Sleep": &num, "Add": &add}[method[dot+1:]]
	if !ok {
		return failed("rpc: can't find method %s", method)
	}
	if err := json.Unmarshal(d.Body, arg); err != nil {
		return failed("amqprpc: malformed request: %s: %v", method, err)
	}
	switch method[dot+1:] {
	case "Echo":
		return outcome{body: jsonString(str)}
	case "Add":
		return outcome{body: strconv.AppendInt(nil, int64(add.A+add.B), 10)}
	case "Fail":
		if str == "" {
			return failed("Conformance.Fail: empty error text")
		}
		return failed("%s", str)
	case "Sleep":
		if num < 0 || num > 10_000 {
			return failed("Conformance.Sleep: %d ms: want 0 to 10000", num)
		}
		return outcome{body: strconv.AppendInt(nil, int64(num), 10), delay: time.Duration(num) * time.Millisecond}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs == nil {
		s.runs = make(map[string]int)
	}
	if method[dot+1:] == "Record" {
		s.runs[str]++
	}
	return outcome{body: strconv.AppendInt(nil, int64(s.runs[str]), 10)}
}

// reply publishes the reply to d, with the edge cases around it, and then
// acknowledges d.
func (s *conformServer) reply(ch *amqp.Channel, d *amqp.Delivery, out outcome) {
	note := s.note(d)
	if d.ReplyTo == "" {
		_ = d.Ack(false)
		s.logf("%-20.40s correlation_id %.32q: ran, no reply_to so no reply%s", d.Type, d.CorrelationId, note)
		return
	}
	msg := amqp.Publishing{CorrelationId: d.CorrelationId, ContentType: jsonContentType, Body: out.body}
	if out.errText != "" {
		msg.Body = nil
		msg.Headers = amqp.Table{errorHeader: s.cut(out.errText)}
	}
	s.breakReply(d, &msg)
	if s.edges {
		stray := amqp.Publishing{
			CorrelationId: "amqprpc-conform-stray-" + strconv.FormatInt(s.strays.Add(1), 10),
			ContentType:   jsonContentType,
			Body:          jsonString("a stray reply, which the client must drop"),
		}
		_ = ch.Publish("", d.ReplyTo, false, false, stray)
	}
	err := ch.Publish("", d.ReplyTo, false, false, msg)
	if s.edges && err == nil {
		s.repeats.Add(1)
		_ = ch.Publish("", d.ReplyTo, false, false, msg)
	}
	_ = d.Ack(false)
	s.answered.Add(1)
	result := "result " + string(out.body)
	if out.errText != "" {
		result = fmt.Sprintf("error %.60q", out.errText)
	}
	if err != nil {
		result = "reply not sent: " + err.Error()
	}
	s.logf("%-20.40s correlation_id %.32q: %s%s", d.Type, d.CorrelationId, result, note)
}

// note says what a client did that the protocol does not ask for.
func (s *conformServer) note(d *amqp.Delivery) string {
	var notes []string
	if d.CorrelationId == "" && d.ReplyTo != "" {
		notes = append(notes, "no correlation_id")
	}
	if d.Type == "" {
		notes = append(notes, "no type: the default method")
	}
	if d.Expiration == "" && d.ReplyTo != "" {
		notes = append(notes, "no expiration")
	}
	if len(notes) == 0 {
		return ""
	}
	return " (note: " + strings.Join(notes, "; ") + ")"
}

// cut cuts an error text to what a reply header carries (§4), on a
// character boundary.
func (s *conformServer) cut(text string) string {
	if len(text) <= maxErrorText {
		return text
	}
	n := maxErrorText
	for !s.faults.cutInsideRune && n > 0 && !utf8.RuneStart(text[n]) {
		n--
	}
	return text[:n]
}

// breakReply applies the faults to a reply.
func (s *conformServer) breakReply(d *amqp.Delivery, msg *amqp.Publishing) {
	f := s.faults
	switch {
	case f.dropCorrelationID:
		msg.CorrelationId = ""
	case f.cutCorrelationID && len(msg.CorrelationId) > 64:
		msg.CorrelationId = msg.CorrelationId[:64]
	}
	if f.errorInBody && msg.Headers != nil {
		msg.Body = jsonString(fmt.Sprint(msg.Headers[errorHeader]))
		msg.Headers = nil
	}
	if f.echoContentType {
		msg.ContentType = d.ContentType
	}
	if f.replyToOnReply {
		msg.ReplyTo = d.ReplyTo
	}
	if f.trailingNewline && msg.Body != nil {
		msg.Body = append(msg.Body, '\n')
	}
}

func (s *conformServer) logf(format string, args ...any) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.log, format+"\n", args...)
}
