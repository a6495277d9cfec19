package conform

// The checks of how replies come back (docs/PROTOCOL.md §3, §4): through
// a private reply queue or direct reply-to, with the request's
// correlation_id and the reply properties §4 gives; and the ping of §8.

import (
	"bytes"
	"fmt"
	"strings"
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

func checkPing(k *checker) error {
	r, err := k.private.call(request{method: "amqprpc.ping", contentType: jsonContentType, body: []byte(`{"ignored":[1,2,3]}`)}, k.timeout)
	if err != nil {
		return err
	}
	return wantValue(r, "pong")
}
