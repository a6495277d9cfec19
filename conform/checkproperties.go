package conform

// The checks of how a server reads a request's properties and body
// (docs/PROTOCOL.md §1, §2): content_type and type present, absent or
// empty, and whitespace around a JSON body.

import (
	"fmt"
	"strconv"
)

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
	return k.wantFailureIn("application/x-amqprpc-conform", "Conformance.Echo", []byte("nope"), "amqprpc: unsupported content type")
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

func checkJSONWhitespace(k *checker) error {
	r, err := k.private.call(request{method: "Conformance.Add", contentType: jsonContentType, body: []byte(" \n\t{\"A\":20,\"B\":22}\r\n ")}, k.timeout)
	if err != nil {
		return err
	}
	return wantValue(r, 42)
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
