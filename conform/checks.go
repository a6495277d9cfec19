package conform

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// What the conformance checks send and expect (docs/PROTOCOL.md §9).
const (
	jsonContentType = "application/json"
	errorHeader     = "x-rpc-error"
	maxErrorText    = 3 << 10 // §4: the longest error text a reply carries
	minErrorKept    = 1 << 10 // §4: the least of a cut text a reply keeps

	// The service's default method, which answers requests with no type.
	defaultMethod = "Conformance.Echo"
	// pingType is amqprpc's reserved type (§8).
	pingType = "amqprpc.ping"
)

// serverChecks are the checks of CheckServer, in the order they run.
// docs/PROTOCOL.md §9 lists them, and a test keeps the two lists the same.
// A check's run returns nil when the server behaves as the statement
// says, else what it did instead. Each check runs with reply queues of its
// own and starts with the server idle (checker.run), so that no check
// depends on those before it.
var serverChecks = []Check{
	{"reply-private", "§3 §4", "a reply comes to the private reply queue named in reply_to, through the default exchange, with the request's correlation_id", checkReplyPrivate},
	{"reply-direct", "§3 §4", "a reply comes through direct reply-to (amq.rabbitmq.reply-to) with the request's correlation_id", checkReplyDirect},
	{"correlation-id", "§1 §4", "a correlation_id of 255 bytes, with spaces, punctuation and non-ASCII UTF-8, comes back byte for byte", checkCorrelationID},
	{"reply-properties", "§4", "a successful reply has content_type application/json, a JSON body with no trailing newline, and no other property or header", checkReplyProperties},
	{"one-reply", "§4 §6", "each request gets one reply, and no reply comes with a correlation_id no request had", checkOneReply},
	{"error-reply", "§4", "a failed call's reply has x-rpc-error holding the error text as a string, an empty body, content_type application/json, and nothing else", checkErrorReply},
	{"error-text-whole", "§4", "an error text of exactly 3072 bytes is sent whole", checkErrorTextWhole},
	{"error-text-cut", "§4", "an error text over 3072 bytes (3073 and 6006 are sent) is cut to at most 3072 bytes on a UTF-8 character boundary, keeping at least its first 1024 bytes", checkErrorTextCut},
	{"content-type-params", "§1 §4", "content_type is read without its parameters and case: Application/JSON; charset=utf-8 is JSON, answered as application/json", checkContentTypeParams},
	{"content-type-unsupported", "§1 §4", "a request in an unsupported content type gets the error amqprpc: unsupported content type, in an application/json reply", checkContentTypeUnsupported},
	{"content-type-absent", "§1 §4", "a request without content_type is JSON, answered as application/json", checkContentTypeAbsent},
	{"content-type-empty", "§1 §4", "a request with an empty content_type is JSON, answered as application/json", checkContentTypeEmpty},
	{"type-absent", "§1", "a request without type runs the default method", checkTypeAbsent},
	{"type-empty", "§1", "a request with an empty type runs the default method", checkTypeEmpty},
	{"unknown-method", "§4", "an unknown method of a known service gets the error rpc: can't find method", checkUnknownMethod},
	{"unknown-service", "§1 §4", "a method of an unknown service gets the error rpc: can't find service, the service being what comes before the last dot", checkUnknownService},
	{"ill-formed-method", "§1 §4", "a type without a dot gets the error rpc: service/method request ill-formed", checkIllFormedMethod},
	{"malformed-body", "§2 §4", "a body that is not JSON gets the error amqprpc: malformed request", checkMalformedBody},
	{"mistyped-body", "§2 §4", "a JSON body that does not fit the argument type gets the error amqprpc: malformed request, whatever the method", checkMistypedBody},
	{"json-whitespace", "§2", "a JSON body may have whitespace around its value", checkJSONWhitespace},
	{"reply-to-absent", "§1 §6", "a request without reply_to runs once and is acknowledged, and no reply comes", checkReplyToAbsent},
	{"reply-to-empty", "§1 §6", "a request with an empty reply_to runs once and is acknowledged, and no reply comes", checkReplyToEmpty},
	{"runs-at-once", "§4 §6", "the server takes as many requests as its prefetch and no more, and runs all it holds at once", checkRunsAtOnce},
	{"expired-not-run", "§1 §6", "a request whose expiration passes while it waits in the queue never runs", checkExpiredNotRun},
	{"out-of-order", "§4", "requests in flight at once are answered as each finishes, each reply matched to its request by correlation_id", checkOutOfOrder},
	{"ping", "§8", "a request of type amqprpc.ping is answered \"pong\" in any content type the server takes, whatever its body, and refused in one it does not take", checkPing},
}

// echo is a JSON request to Echo s.
func (k *checker) echo(s string) request {
	return request{method: "Conformance.Echo", contentType: jsonContentType, body: jsonString(s)}
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
	if reflect.DeepEqual(got, norm) {
		return nil
	}
	gs, gotString := got.(string)
	ws, wantString := norm.(string)
	if gotString && wantString {
		return fmt.Errorf("the reply is a string of %s", differ(gs, ws))
	}
	return fmt.Errorf("the reply's body is %+.80q (%d bytes); want %s", r.Body, len(r.Body), b)
}

// wantJSON checks that r is a successful JSON reply and decodes it into v.
func wantJSON(r reply, v any) error {
	if e, ok := r.Headers[errorHeader]; ok {
		return fmt.Errorf("an error reply, x-rpc-error %+.100q; want a result", fmt.Sprint(e))
	}
	if r.ContentType != jsonContentType {
		return fmt.Errorf("the reply's content_type is %+q; want %q", r.ContentType, jsonContentType)
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("the reply's body %+.60q (%d bytes) is not the JSON expected: %v", r.Body, len(r.Body), err)
	}
	return nil
}

// jsonString is s as a JSON string.
func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}
