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
	r, err := k.private.call(request{method: "Conformance.Fail", contentType: jsonContentType, body: jsonString(text)}, k.timeout)
	if err != nil {
		return err
	}
	got, err := errorText(r)
	switch {
	case err != nil:
		return err
	case got != text:
		return fmt.Errorf("x-rpc-error of %s", differ(got, text))
	}
	return wantOnlyReplyProperties(r, true)
}

func checkErrorTextWhole(k *checker) error {
	text := strings.Repeat("€", maxErrorText/len("€"))
	got, err := k.failWith(text)
	if err != nil {
		return err
	}
	if got != text {
		return fmt.Errorf("x-rpc-error of %s; want the whole text", differ(got, text))
	}
	return nil
}

// checkErrorTextCut sends texts just over the limit and well over it. A
// prefix of 6 bytes puts both byte 3069 and byte 3072 inside a 4-byte
// character: a cut at either that ignores characters shows.
func checkErrorTextCut(k *checker) error {
	for _, text := range []string{
		"long: " + strings.Repeat("😀", 766) + "ab!", // 3073 bytes
		"long: " + strings.Repeat("😀", 1500),        // 6006 bytes
	} {
		got, err := k.failWith(text)
		if err == nil {
			err = wantCut(got, text)
		}
		if err != nil {
			return fmt.Errorf("an error text of %d bytes: %w", len(text), err)
		}
	}
	return nil
}

// wantCut checks that got is text cut as §4 says: at most 3072 bytes of
// valid UTF-8 that start with at least the first 1024 bytes of text, cut on
// a character boundary; a marker of any kind may follow what is kept.
func wantCut(got, text string) error {
	kept := 0
	for kept < len(got) && kept < len(text) && got[kept] == text[kept] {
		kept++
	}
	for kept > 0 && kept < len(text) && !utf8.RuneStart(text[kept]) {
		kept-- // a part of a character is not kept text
	}
	switch {
	case len(got) > maxErrorText:
		return fmt.Errorf("x-rpc-error of %d bytes; want at most %d", len(got), maxErrorText)
	case !utf8.ValidString(got):
		return fmt.Errorf("x-rpc-error of %d bytes is not valid UTF-8: it ends %+q", len(got), got[max(0, len(got)-8):])
	case kept < minErrorKept:
		return fmt.Errorf("x-rpc-error keeps the first %d bytes of the text; want at least %d (it is %s)", kept, minErrorKept, differ(got, text))
	}
	return nil
}

// failWith calls Fail with text and returns the error text of its reply.
func (k *checker) failWith(text string) (string, error) {
	r, err := k.private.call(request{method: "Conformance.Fail", contentType: jsonContentType, body: jsonString(text)}, k.timeout)
	if err != nil {
		return "", err
	}
	return errorText(r)
}

func checkUnknownMethod(k *checker) error {
	return k.wantFailure("Conformance.Nope", jsonString("x"), "rpc: can't find method ")
}

// checkUnknownService: net/rpc splits Service.Method at the last dot, so
// Conformance.Echo.More names the service Conformance.Echo.
func checkUnknownService(k *checker) error {
	for _, method := range []string{"Nope.Echo", "Conformance.Echo.More"} {
		if err := k.wantFailure(method, jsonString("x"), "rpc: can't find service "); err != nil {
			return fmt.Errorf("type %q: %w", method, err)
		}
	}
	return nil
}

func checkIllFormedMethod(k *checker) error {
	return k.wantFailure("Conformance", jsonString("x"), "rpc: service/method request ill-formed: ")
}

func checkMalformedBody(k *checker) error {
	return k.wantFailure("Conformance.Add", []byte(`{"A":`), "amqprpc: malformed request")
}

// checkMistypedBody sends every method JSON of a type it does not take.
func checkMistypedBody(k *checker) error {
	for _, c := range []struct{ method, body string }{
		{"Conformance.Add", `"six"`},
		{"Conformance.Add", `{"A":"six","B":7}`},
		{"Conformance.Echo", `42`},
		{"Conformance.Fail", `{"text":"x"}`},
		{"Conformance.Sleep", `"10"`},
		{"Conformance.Record", `["token"]`},
		{"Conformance.Count", `true`},
	} {
		if err := k.wantFailure(c.method, []byte(c.body), "amqprpc: malformed request"); err != nil {
			return fmt.Errorf("%s with %s: %w", c.method, c.body, err)
		}
	}
	return nil
}

// wantFailure calls method with a JSON body and checks for an error reply
// whose text starts with want.
func (k *checker) wantFailure(method string, body []byte, want string) error {
	return k.wantFailureIn(jsonContentType, method, body, want)
}

// wantFailureIn is wantFailure with a body in contentType.
func (k *checker) wantFailureIn(contentType, method string, body []byte, want string) error {
	r, err := k.private.call(request{method: method, contentType: contentType, body: body}, k.timeout)
	if err != nil {
		return err
	}
	got, err := errorText(r)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(got, want) {
		return fmt.Errorf("x-rpc-error %+.100q; want one starting %q", got, want)
	}
	return nil
}

// errorText checks that r is an error reply as §4 says and returns its
// text.
func errorText(r reply) (string, error) {
	v, ok := r.Headers[errorHeader]
	if !ok {
		return "", fmt.Errorf("no x-rpc-error header; want an error reply (the reply's body: %+.60q, %d bytes)", r.Body, len(r.Body))
	}
	text, ok := v.(string)
	switch {
	case !ok:
		return "", fmt.Errorf("x-rpc-error is a %T; want a string (an AMQP long string)", v)
	case len(r.Body) > 0:
		return "", fmt.Errorf("an error reply with a body of %d bytes (%+.40q); want an empty body", len(r.Body), r.Body)
	case r.ContentType != jsonContentType:
		return "", fmt.Errorf("an error reply with content_type %+q; want %q", r.ContentType, jsonContentType)
	}
	return text, nil
}
