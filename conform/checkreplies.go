package conform

// The checks of how replies come back (docs/PROTOCOL.md §3, §4): through
// a private reply queue or direct reply-to, with the request's
// correlation_id, the reply properties §4 gives and nothing else, one
// reply per request; and the ping of §8.

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"
)

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
	direct, err := k.directCaller()
	if err != nil {
		return err
	}
	r, err := direct.call(k.echo("direct"), k.timeout)
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
	if bytes.HasSuffix(r.Body, []byte("\n")) {
		return fmt.Errorf("the reply's body %+q ends with a newline", r.Body)
	}
	return wantOnlyReplyProperties(r, false)
}

// oneReplyCalls is how many requests the one-reply check sends at once;
// oneReplyWatch how long it watches for more replies once it has every
// reply, and the reply to a request sent after them.
const (
	oneReplyCalls = 10
	oneReplyWatch = 300 * time.Millisecond
)

// checkOneReply sends requests at once, takes their replies and the reply
// to one more sent after them, then watches a while for a second reply to
// any of them, or a reply to no request. (A request the broker delivers
// again can be answered again, §6; nothing here makes it deliver one
// twice.)
func checkOneReply(k *checker) error {
	type sent struct {
		id string
		w  <-chan reply
	}
	var calls []sent
	for i := range oneReplyCalls {
		id, w, err := k.private.send(k.echo(fmt.Sprint("one-", i)), k.timeout)
		if err != nil {
			return err
		}
		calls = append(calls, sent{id, w})
	}
	for i, c := range calls {
		if _, err := k.private.await(c.id, c.w, k.timeout); err != nil {
			return fmt.Errorf("request %d of %d: %w", i+1, oneReplyCalls, err)
		}
	}
	if _, err := k.private.call(k.echo("one-after"), k.timeout); err != nil {
		return fmt.Errorf("the request sent after the others were answered: %w", err)
	}
	time.Sleep(oneReplyWatch) // watching for replies that must not come
	repeated, strays := k.private.counts()
	if len(repeated) > 0 {
		var lines []string
		for id, n := range repeated {
			lines = append(lines, fmt.Sprintf("%.60q got %d", id, n))
		}
		sort.Strings(lines)
		return fmt.Errorf("%d of %d requests got more than one reply (%s); a request delivered once gets one reply (§4, §6)",
			len(repeated), oneReplyCalls+1, strings.Join(lines, ", "))
	}
	if len(strays) > 0 {
		return fmt.Errorf("%s came with a correlation_id no request had (%.60q); a server replies only to requests (§4)",
			plural(len(strays), "reply"), strays[0])
	}
	return nil
}

// A ping request: its content type and body, and what must come back: the
// JSON string "pong", the text pong, or an error starting with errText.
type pingCase struct {
	contentType string
	body        []byte
	json, text  bool
	errText     string
}

// checkPing pings with bodies the server must not decode, in the content
// types a server takes or may take, and in one no server takes.
func checkPing(k *checker) error {
	const unsupported = "amqprpc: unsupported content type"
	for _, c := range []pingCase{
		{jsonContentType, []byte(`{"ignored":[1,2,3]}`), true, false, ""},
		{jsonContentType, []byte(`not JSON {`), true, false, ""},
		{"", []byte(`[]`), true, false, ""},
		{"text/plain", []byte(`anything`), false, true, unsupported},
		{"application/x-amqprpc-conform", []byte(`anything`), false, false, unsupported},
	} {
		r, err := k.private.call(request{method: pingType, contentType: c.contentType, body: c.body}, k.timeout)
		if err == nil {
			err = c.want(r)
		}
		if err != nil {
			return fmt.Errorf("a ping with content_type %q and body %+q: %w", c.contentType, c.body, err)
		}
	}
	return nil
}

// want checks the reply to a ping.
func (c pingCase) want(r reply) error {
	text, failed := r.Headers[errorHeader]
	switch {
	case failed && c.errText != "":
		t, err := errorText(r)
		if err == nil && !strings.HasPrefix(t, c.errText) {
			err = fmt.Errorf("x-rpc-error %+.100q; want one starting %q, or pong", t, c.errText)
		}
		return err
	case failed:
		return fmt.Errorf("x-rpc-error %+.100q; want pong: a server answers a ping without reading its body (§8)", fmt.Sprint(text))
	case c.json:
		return wantValue(r, "pong")
	case c.text && r.ContentType == "text/plain":
		if string(r.Body) != "pong" {
			return fmt.Errorf("a text/plain reply of %s", differ(string(r.Body), "pong"))
		}
		return nil
	}
	return fmt.Errorf("a reply with content_type %+q and body %+.40q; want the error %q: a server refuses a ping in a content type it does not take (§8)",
		r.ContentType, r.Body, c.errText)
}
