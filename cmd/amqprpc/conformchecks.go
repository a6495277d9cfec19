package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
)

// What the conformance checks send and expect (docs/PROTOCOL.md §9).
const (
	jsonContentType = "application/json"
	errorHeader     = "x-rpc-error"
	maxErrorText    = 3 << 10 // §4: the longest error text a reply carries
	minErrorKept    = 1 << 10 // §4: the least of a cut text a reply keeps

	// The service's default method, which answers requests with no type.
	defaultMethod = "Conformance.Echo"
)

// A conformCheck is one statement of docs/PROTOCOL.md that a caller can
// observe, checked against a server. run returns nil when the server
// behaves as the statement says, else what it did instead.
type conformCheck struct {
	name     string
	sections string
	what     string
	run      func(k *checker) error
}

// conformChecks are the checks of `amqprpc conform server`, in the order
// they run. docs/PROTOCOL.md §9 lists them, and a test keeps the two
// lists the same.
var conformChecks = []conformCheck{
	{"reply-private", "§3 §4", "a reply comes to the private reply queue named in reply_to, through the default exchange, with the request's correlation_id", checkReplyPrivate},
	{"reply-direct", "§3 §4", "a reply comes through direct reply-to (amq.rabbitmq.reply-to) with the request's correlation_id", checkReplyDirect},
	{"correlation-id", "§1 §4", "a correlation_id of 255 bytes, with spaces, punctuation and non-ASCII UTF-8, comes back byte for byte", checkCorrelationID},
	{"reply-properties", "§4", "a successful reply has content_type application/json, a JSON body with no trailing newline, and no x-rpc-error, reply_to or expiration", checkReplyProperties},
	{"error-reply", "§4", "a failed call's reply has x-rpc-error holding the error text as a string, an empty body, and content_type application/json", checkErrorReply},
	{"error-text-whole", "§4", "an error text of exactly 3072 bytes is sent whole", checkErrorTextWhole},
	{"error-text-cut", "§4", "a longer error text is cut to at most 3072 bytes on a UTF-8 character boundary, keeping at least its first 1024 bytes", checkErrorTextCut},
	{"content-type-params", "§1 §4", "content_type is read without its parameters and case: Application/JSON; charset=utf-8 is JSON, answered as application/json", checkContentTypeParams},
	{"content-type-unsupported", "§4", "a request in an unsupported content type gets the error amqprpc: unsupported content type, in an application/json reply", checkContentTypeUnsupported},
	{"content-type-absent", "§1 §4", "a request without content_type is JSON, answered as application/json", checkContentTypeAbsent},
	{"content-type-empty", "§1 §4", "a request with an empty content_type is JSON, answered as application/json", checkContentTypeEmpty},
	{"type-absent", "§1", "a request without type runs the default method", checkTypeAbsent},
	{"type-empty", "§1", "a request with an empty type runs the default method", checkTypeEmpty},
	{"unknown-method", "§4", "an unknown method of a known service gets the error rpc: can't find method", checkUnknownMethod},
	{"unknown-service", "§4", "a method of an unknown service gets the error rpc: can't find service", checkUnknownService},
	{"ill-formed-method", "§4", "a type without a dot gets the error rpc: service/method request ill-formed", checkIllFormedMethod},
	{"malformed-body", "§2 §4", "a body that is not JSON gets the error amqprpc: malformed request", checkMalformedBody},
	{"mistyped-body", "§2 §4", "a JSON body that does not fit the argument type gets the error amqprpc: malformed request", checkMistypedBody},
	{"json-whitespace", "§2", "a JSON body may have whitespace around its value", checkJSONWhitespace},
	{"reply-to-absent", "§1 §6", "a request without reply_to runs once, and no reply comes", checkReplyToAbsent},
	{"reply-to-empty", "§1 §6", "a request with an empty reply_to runs once, and no reply comes", checkReplyToEmpty},
	{"expired-not-run", "§1 §6", "a request whose expiration passes while it waits in the queue never runs", checkExpiredNotRun},
	{"out-of-order", "§4 §6", "requests in flight at once are answered as each finishes, each reply matched to its request by correlation_id", checkOutOfOrder},
	{"ping", "§8", "a request of type amqprpc.ping is answered \"pong\", whatever its body", checkPing},
}

func checkReplyPrivate(k *checker) error {
	r, err := k.private.call(k.echo("private"), k.timeout)
	if err != nil {
		return err
	}
	if r.Exchange != "" || r.RoutingKey != k.private.private {
		return fmt.Errorf("the reply came through exchange %q with routing key %q; want the default exchange and %q", r.Exchange, r.RoutingKey, k.private.private)
	}
	return wantValue(r, "private")
}

func checkReplyDirect(k *checker) error {
	r, err := k.direct.call(k.echo("direct"), k.timeout)
	if err != nil {
		return err
	}
	return wantValue(r, "direct")
}

func checkCorrelationID(k *checker) error {
	id := "amqprpc conform ✓ ümlaut/#%*:;, " + k.token
	id += strings.Repeat(".", 255-len(id))
	req := k.echo("correlation")
	req.correlationID = id
	r, err := k.private.call(req, k.timeout)
	if err != nil {
		return err
	}
	return wantValue(r, "correlation")
}

func checkReplyProperties(k *checker) error {
	r, err := k.private.call(request{method: "Conformance.Add", contentType: jsonContentType, body: []byte(`{"A":2,"B":3}`)}, k.timeout)
	if err != nil {
		return err
	}
	if err := wantValue(r, 5); err != nil {
		return err
	}
	switch {
	case bytes.HasSuffix(r.Body, []byte("\n")):
		return fmt.Errorf("the reply's body %q ends with a newline", r.Body)
	case r.ReplyTo != "":
		return fmt.Errorf("the reply has reply_to %.80q; want none", r.ReplyTo)
	case r.Expiration != "":
		return fmt.Errorf("the reply has expiration %q; want none", r.Expiration)
	}
	return nil
}

func checkErrorReply(k *checker) error {
	const text = "conformance: failed as asked ✗"
	return k.wantFailure("Conformance.Fail", jsonString(text), text, true)
}

func checkErrorTextWhole(k *checker) error {
	text := strings.Repeat("€", maxErrorText/len("€"))
	r, err := k.private.call(request{method: "Conformance.Fail", contentType: jsonContentType, body: jsonString(text)}, k.timeout)
	if err != nil {
		return err
	}
	got, err := errorText(r)
	if err != nil {
		return err
	}
	if got != text {
		return fmt.Errorf("x-rpc-error of %d bytes, starting %.24q; want the whole text of %d bytes", len(got), got, len(text))
	}
	return nil
}

func checkErrorTextCut(k *checker) error {
	// A prefix of 6 bytes puts both byte 3069 and byte 3072 inside a
	// 4-byte character: a cut at either that ignores characters shows.
	text := "long: " + strings.Repeat("😀", 1500)
	r, err := k.private.call(request{method: "Conformance.Fail", contentType: jsonContentType, body: jsonString(text)}, k.timeout)
	if err != nil {
		return err
	}
	got, err := errorText(r)
	if err != nil {
		return err
	}
	kept := strings.TrimSuffix(strings.TrimSuffix(got, "..."), "…")
	switch {
	case len(got) > maxErrorText:
		return fmt.Errorf("x-rpc-error of %d bytes; want at most %d", len(got), maxErrorText)
	case !utf8.ValidString(got):
		return fmt.Errorf("x-rpc-error of %d bytes is not valid UTF-8: it ends %q", len(got), got[max(0, len(got)-8):])
	case !strings.HasPrefix(text, kept):
		return fmt.Errorf("x-rpc-error starting %.24q is not the start of the error text (%.24q)", got, text)
	case len(kept) < minErrorKept:
		return fmt.Errorf("x-rpc-error keeps %d bytes of the text; want at least %d", len(kept), minErrorKept)
	}
	return nil
}

func checkContentTypeParams(k *checker) error {
	req := k.echo("params")
	req.contentType = "Application/JSON; charset=utf-8"
	r, err := k.private.call(req, k.timeout)
	if err != nil {
		return err
	}
	return wantValue(r, "params")
}

func checkContentTypeUnsupported(k *checker) error {
	return k.wantFailureIn("application/x-amqprpc-conform", "Conformance.Echo", []byte("nope"), "amqprpc: unsupported content type", false)
}

func checkContentTypeAbsent(k *checker) error {
	req := k.echo("no content type")
	req.contentType = ""
	r, err := k.private.call(req, k.timeout)
	if err != nil {
		return err
	}
	return wantValue(r, "no content type")
}

func checkContentTypeEmpty(k *checker) error {
	r, err := k.rawCall([]rawProp{{propType, "Conformance.Echo"}, {propContentType, ""}}, jsonString("empty content type"))
	if err != nil {
		return err
	}
	return wantValue(r, "empty content type")
}

func checkTypeAbsent(k *checker) error {
	r, err := k.private.call(request{contentType: jsonContentType, body: jsonString("no type")}, k.timeout)
	if err != nil {
		return err
	}
	return wantValue(r, "no type")
}

func checkTypeEmpty(k *checker) error {
	r, err := k.rawCall([]rawProp{{propType, ""}, {propContentType, jsonContentType}}, jsonString("empty type"))
	if err != nil {
		return err
	}
	return wantValue(r, "empty type")
}

func checkUnknownMethod(k *checker) error {
	return k.wantFailure("Conformance.Nope", jsonString("x"), "rpc: can't find method ", false)
}

func checkUnknownService(k *checker) error {
	return k.wantFailure("Nope.Echo", jsonString("x"), "rpc: can't find service ", false)
}

func checkIllFormedMethod(k *checker) error {
	return k.wantFailure("Conformance", jsonString("x"), "rpc: service/method request ill-formed: ", false)
}

func checkMalformedBody(k *checker) error {
	return k.wantFailure("Conformance.Add", []byte(`{"A":`), "amqprpc: malformed request", false)
}

func checkMistypedBody(k *checker) error {
	return k.wantFailure("Conformance.Add", jsonString("six"), "amqprpc: malformed request", false)
}

func checkJSONWhitespace(k *checker) error {
	r, err := k.private.call(request{method: "Conformance.Add", contentType: jsonContentType, body: []byte(" \n\t{\"A\":20,\"B\":22}\r\n ")}, k.timeout)
	if err != nil {
		return err
	}
	return wantValue(r, 42)
}

func checkReplyToAbsent(k *checker) error {
	token := k.token + "-reply-to-absent"
	id, w, err := k.private.send(request{method: "Conformance.Record", contentType: jsonContentType, body: jsonString(token), noReplyTo: true}, k.timeout)
	if err != nil {
		return err
	}
	return k.ranOnceWithoutReply(token, id, w)
}

func checkReplyToEmpty(k *checker) error {
	token := k.token + "-reply-to-empty"
	id := k.token + "-reply-to-empty-call"
	w := k.private.watch(id)
	props := []rawProp{{propType, "Conformance.Record"}, {propContentType, jsonContentType}, {propReplyTo, ""}, {propCorrelationID, id}}
	if err := rawPublish(k.url, k.queue, props, jsonString(token), k.timeout); err != nil {
		k.private.forget(id)
		return fmt.Errorf("publishing with an empty reply_to: %w", err)
	}
	return k.ranOnceWithoutReply(token, id, w)
}

// ranOnceWithoutReply waits until Record ran for token, and checks that it
// ran once and that no reply to its request id came.
func (k *checker) ranOnceWithoutReply(token, id string, w <-chan reply) error {
	defer k.private.forget(id)
	n, err := k.countUntil(token, func(n int) bool { return n > 0 })
	switch {
	case err != nil:
		return err
	case n == 0:
		return fmt.Errorf("the Record request did not run within %v (Count says 0)", k.timeout)
	case n > 1:
		return fmt.Errorf("the Record request ran %d times; want once", n)
	}
	select {
	case r := <-w:
		return fmt.Errorf("a reply came (to %q, body %.40q); want none", r.RoutingKey, r.Body)
	default:
		return nil
	}
}

// expiredSleep is how long the calls that fill the server's prefetch
// take; expiredTTL is the probe's expiration, well within it.
const (
	expiredSleep = 1500 * time.Millisecond
	expiredTTL   = 200 * time.Millisecond
)

// checkExpiredNotRun fills the server's prefetch with Sleep calls, so
// that the next request has to wait in the queue, and sends a Record
// request with a short expiration. The broker must drop it there, so
// Count must still say 0 once the Sleep calls are done.
func checkExpiredNotRun(k *checker) error {
	if k.prefetch < 1 {
		return errors.New("needs -prefetch of 1 or more")
	}
	var sleeps []<-chan reply
	var ids []string
	defer func() {
		for _, id := range ids {
			k.private.forget(id)
		}
	}()
	for range k.prefetch {
		id, w, err := k.private.send(request{method: "Conformance.Sleep", contentType: jsonContentType, body: []byte(strconv.FormatInt(expiredSleep.Milliseconds(), 10))}, k.timeout)
		if err != nil {
			return err
		}
		ids, sleeps = append(ids, id), append(sleeps, w)
	}
	token := k.token + "-expired"
	probeID, probe, waiting, err := k.publishProbe(token)
	if err != nil {
		return err
	}
	defer k.private.forget(probeID)
	deadline := time.Now().Add(2*expiredSleep + k.timeout)
	for i, w := range sleeps {
		if _, err := k.private.await(ids[i], w, time.Until(deadline)); err != nil {
			return fmt.Errorf("the Sleep call %d of %d: %w", i+1, len(sleeps), err)
		}
	}
	if waiting == 0 {
		return fmt.Errorf("the server took the request with expiration %v at once, while it held %d unanswered requests: "+
			"its prefetch is larger than %d (tell the checker with -prefetch), or it acknowledges requests before it answers them (§6)",
			expiredTTL, k.prefetch, k.prefetch)
	}
	// Were it delivered now, the probe would come before Count: look twice.
	for i := range 2 {
		if i > 0 {
			time.Sleep(300 * time.Millisecond) // a run that must not happen cannot be waited for
		}
		n, err := k.count(token)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("the request with expiration %v ran (Count says %d) after waiting in the queue for %v", expiredTTL, n, expiredSleep)
		}
	}
	select {
	case <-probe:
		return errors.New("the request that expired in the queue was answered")
	default:
		return nil
	}
}

// publishProbe publishes a Record of token with a short expiration on a
// channel with publisher confirms, waits for the broker to take it, and
// says how many requests then wait in the queue.
func (k *checker) publishProbe(token string) (string, <-chan reply, int, error) {
	ch, err := k.conn.Channel()
	if err != nil {
		return "", nil, 0, err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return "", nil, 0, err
	}
	id := k.token + "-expired-call"
	w := k.private.watch(id)
	dc, err := ch.PublishWithDeferredConfirm("", k.queue, true, false, amqp.Publishing{
		CorrelationId: id,
		ReplyTo:       k.private.replyTo,
		Type:          "Conformance.Record",
		ContentType:   jsonContentType,
		Body:          jsonString(token),
		Expiration:    strconv.FormatInt(expiredTTL.Milliseconds(), 10),
	})
	if err == nil {
		ctx, cancel := contextWithTimeout(k.timeout)
		var acked bool
		acked, err = dc.WaitContext(ctx)
		cancel()
		if err == nil && !acked {
			err = errors.New("the broker refused it")
		}
	}
	if err != nil {
		k.private.forget(id)
		return "", nil, 0, fmt.Errorf("publishing the request that should expire: %w", err)
	}
	q, err := ch.QueueDeclarePassive(k.queue, false, false, false, false, nil)
	if err != nil {
		k.private.forget(id)
		return "", nil, 0, fmt.Errorf("asking the broker about queue %q: %w", k.queue, err)
	}
	return id, w, q.Messages, nil
}

// The out-of-order check: sleeps of decreasing length, then quick calls.
const (
	maxOutOfOrderSleeps = 5
	outOfOrderStep      = 150 * time.Millisecond
	outOfOrderAdds      = 20
)

func checkOutOfOrder(k *checker) error {
	n := min(k.prefetch, maxOutOfOrderSleeps)
	if n < 2 {
		return fmt.Errorf("needs a server that runs 2 or more requests at once (-prefetch %d)", k.prefetch)
	}
	type call struct {
		id   string
		w    <-chan reply
		want int
	}
	var calls []call
	for i := range n {
		ms := int((time.Duration(n-i) * outOfOrderStep).Milliseconds())
		id, w, err := k.private.send(request{method: "Conformance.Sleep", contentType: jsonContentType, body: []byte(strconv.Itoa(ms))}, k.timeout)
		if err != nil {
			return err
		}
		calls = append(calls, call{id, w, ms})
	}
	for i := range outOfOrderAdds {
		id, w, err := k.private.send(request{method: "Conformance.Add", contentType: jsonContentType, body: fmt.Appendf(nil, `{"A":%d,"B":%d}`, i, 1000)}, k.timeout)
		if err != nil {
			return err
		}
		calls = append(calls, call{id, w, i + 1000})
	}
	replies := make([]reply, len(calls))
	var firstErr error
	deadline := time.Now().Add(k.timeout + time.Duration(n)*outOfOrderStep)
	for i, c := range calls {
		r, err := k.private.await(c.id, c.w, time.Until(deadline))
		if err == nil {
			err = wantValue(r, c.want)
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("call %d of %d: %w", i+1, len(calls), err)
		}
		replies[i] = r
	}
	if firstErr != nil {
		return firstErr
	}
	longest := replies[0].at
	if !replies[n-1].at.Before(longest) {
		return fmt.Errorf("the reply to the shortest Sleep (%v, sent last) came after the reply to the longest (%v, sent first): "+
			"the server answers in the order requests came", outOfOrderStep, time.Duration(n)*outOfOrderStep)
	}
	for i, r := range replies[n:] {
		if !r.at.Before(longest) {
			return fmt.Errorf("the reply to Add %d came after the reply to a Sleep of %v sent before it", i+1, time.Duration(n)*outOfOrderStep)
		}
	}
	return nil
}

func checkPing(k *checker) error {
	r, err := k.private.call(request{method: "amqprpc.ping", contentType: jsonContentType, body: []byte(`{"ignored":[1,2,3]}`)}, k.timeout)
	if err != nil {
		return err
	}
	return wantValue(r, "pong")
}

// echo is a JSON request to Echo s.
func (k *checker) echo(s string) request {
	return request{method: "Conformance.Echo", contentType: jsonContentType, body: jsonString(s)}
}

// rawCall publishes a request with exactly props, a correlation id and
// this checker's private reply queue added, and waits for its reply.
func (k *checker) rawCall(props []rawProp, body []byte) (reply, error) {
	id := k.token + "-raw-" + strconv.FormatUint(k.private.seq.Add(1), 10)
	w := k.private.watch(id)
	props = append(props, rawProp{propCorrelationID, id}, rawProp{propReplyTo, k.private.replyTo})
	if err := rawPublish(k.url, k.queue, props, body, k.timeout); err != nil {
		k.private.forget(id)
		return reply{}, fmt.Errorf("publishing with an empty property: %w", err)
	}
	return k.private.await(id, w, k.timeout)
}

// wantFailure calls method with a JSON body and checks for an error reply
// whose text is want (exact) or starts with it.
func (k *checker) wantFailure(method string, body []byte, want string, exact bool) error {
	return k.wantFailureIn(jsonContentType, method, body, want, exact)
}

func (k *checker) wantFailureIn(contentType, method string, body []byte, want string, exact bool) error {
	r, err := k.private.call(request{method: method, contentType: contentType, body: body}, k.timeout)
	if err != nil {
		return err
	}
	got, err := errorText(r)
	if err != nil {
		return err
	}
	switch {
	case exact && got != want:
		return fmt.Errorf("x-rpc-error %.100q; want %q", got, want)
	case !strings.HasPrefix(got, want):
		return fmt.Errorf("x-rpc-error %.100q; want one starting %q", got, want)
	}
	return nil
}

// count calls Count for token.
func (k *checker) count(token string) (int, error) {
	r, err := k.private.call(request{method: "Conformance.Count", contentType: jsonContentType, body: jsonString(token)}, k.timeout)
	if err != nil {
		return 0, fmt.Errorf("calling Count: %w", err)
	}
	var n int
	if err := wantJSON(r, &n); err != nil {
		return 0, fmt.Errorf("calling Count: %w", err)
	}
	return n, nil
}

// countUntil calls Count until done(n) holds or the checker's timeout
// passes, and returns the last count.
func (k *checker) countUntil(token string, done func(int) bool) (int, error) {
	deadline := time.Now().Add(k.timeout)
	for {
		n, err := k.count(token)
		if err != nil || done(n) || time.Now().After(deadline) {
			return n, err
		}
		time.Sleep(50 * time.Millisecond) // polling the server's count, with a deadline
	}
}

// errorText checks that r is an error reply as §4 says and returns its
// text.
func errorText(r reply) (string, error) {
	v, ok := r.Headers[errorHeader]
	if !ok {
		return "", fmt.Errorf("no x-rpc-error header; want an error reply (body %.60q)", r.Body)
	}
	text, ok := v.(string)
	switch {
	case !ok:
		return "", fmt.Errorf("x-rpc-error is a %T; want a string (an AMQP long string)", v)
	case len(r.Body) > 0:
		return "", fmt.Errorf("an error reply with a body of %d bytes (%.40q); want an empty body", len(r.Body), r.Body)
	case r.ContentType != jsonContentType:
		return "", fmt.Errorf("an error reply with content_type %q; want %q", r.ContentType, jsonContentType)
	}
	return text, nil
}

// wantValue checks that r is a successful JSON reply holding want.
func wantValue(r reply, want any) error {
	var got any
	if err := wantJSON(r, &got); err != nil {
		return err
	}
	var norm any // want as a JSON decoder gives it back
	b, _ := json.Marshal(want)
	_ = json.Unmarshal(b, &norm)
	if !reflect.DeepEqual(got, norm) {
		return fmt.Errorf("the reply %.80s; want %s", r.Body, b)
	}
	return nil
}

// wantJSON checks that r is a successful JSON reply and decodes it into v.
func wantJSON(r reply, v any) error {
	if e, ok := r.Headers[errorHeader]; ok {
		return fmt.Errorf("an error reply, x-rpc-error %.100q; want a result", fmt.Sprint(e))
	}
	if r.ContentType != jsonContentType {
		return fmt.Errorf("the reply's content_type is %q; want %q", r.ContentType, jsonContentType)
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("the reply's body %.60q is not the JSON expected: %v", r.Body, err)
	}
	return nil
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}
