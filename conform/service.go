package conform

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// outcome is what a request gets: a JSON body or an error text, after
// delay; for a step of the client flow, in the shape the step names.
type outcome struct {
	body       []byte
	errText    string
	delay      time.Duration
	shape      string    // a step of the client flow (clientflow.go), or ""
	emptyError bool      // an x-rpc-error that is empty
	taken      time.Time // when the server took the request
}

// failed is the outcome of a request that fails with the error text
// fmt.Sprintf(format, args...).
func failed(format string, args ...any) outcome {
	return outcome{errText: fmt.Sprintf(format, args...)}
}

// run serves one request as docs/PROTOCOL.md says.
func (s *conformServer) run(d *amqp.Delivery) outcome {
	method := d.Type
	if method == pingType && s.faults.pingAnyType {
		return outcome{body: jsonString("pong")}
	}
	mediaType, _, _ := strings.Cut(d.ContentType, ";")
	if mt := strings.TrimSpace(mediaType); mt != "" && !strings.EqualFold(mt, jsonContentType) {
		return failed("amqprpc: unsupported content type %.64q (want %q)", d.ContentType, jsonContentType)
	}
	if method == pingType && s.faults.pingDecodes && !json.Valid(d.Body) {
		return failed("amqprpc: malformed request: ping: the body is not JSON")
	}
	if method == pingType && !s.faults.noPing {
		return outcome{body: jsonString("pong")}
	}
	if method == "" && !s.faults.noDefaultMethod {
		method = defaultMethod
	}
	if method == "" {
		return failed("amqprpc: request has no type and the server has no default method")
	}
	dot := strings.LastIndex(method, ".")
	if s.faults.firstDot {
		dot = strings.Index(method, ".")
	}
	switch {
	case dot < 0:
		return failed("rpc: service/method request ill-formed: %s", method)
	case method[:dot] != "Conformance":
		return failed("rpc: can't find service %s", method)
	}
	return s.call(method, method[dot+1:], d.Body)
}

// call runs a method of the conformance service on a JSON body.
func (s *conformServer) call(method, name string, body []byte) outcome {
	var str string
	var num int
	var add struct{ A, B int }
	arg, ok := map[string]any{"Echo": &str, "Fail": &str, "Record": &str, "Count": &str, "Sleep": &num, "Add": &add}[name]
	if !ok {
		return failed("rpc: can't find method %s", method)
	}
	if s.faults.echoAnyJSON && name == "Echo" && json.Valid(body) {
		return outcome{body: jsonString(strings.Trim(string(body), `"`))}
	}
	if err := json.Unmarshal(body, arg); err != nil {
		return failed("amqprpc: malformed request: %s: %v", method, err)
	}
	switch name {
	case "Echo":
		if s.edges && isStep(str) {
			return shaped(str) // clientflow.go
		}
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
	return outcome{body: strconv.AppendInt(nil, int64(s.record(str, name == "Record")), 10)}
}

// record counts a run of Record for token when run is set, and returns
// how many there have been.
func (s *conformServer) record(token string, run bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs == nil {
		s.runs = make(map[string]int)
	}
	if run {
		s.runs[token]++
		if token == flowDone && s.finished != nil && s.runs[token] == 1 {
			close(s.finished)
		}
	}
	return s.runs[token]
}
