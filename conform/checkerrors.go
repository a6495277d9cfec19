package conform

// The checks of error replies (docs/PROTOCOL.md §4): the x-rpc-error
// header, how a long error text is cut, and the errors a server gives for
// requests it cannot run.

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

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

// wantFailure calls method with a JSON body and checks for an error reply
// whose text is want (exact) or starts with it.
func (k *checker) wantFailure(method string, body []byte, want string, exact bool) error {
	return k.wantFailureIn(jsonContentType, method, body, want, exact)
}

// wantFailureIn is wantFailure with a body in contentType.
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
