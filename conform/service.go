package conform

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/amqprpc/amqprpc"
	amqp "github.com/rabbitmq/amqp091-go"
)

// outcome is what a request gets: a JSON body or an error text, after
// delay.
type outcome struct {
	body    []byte
	errText string
	delay   time.Duration
	taken   time.Time // when the server took the request
}

// failed is the outcome of a request that fails with the error text
// fmt.Sprintf(format, args...).
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
