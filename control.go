package amqprpc

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/transport"
)

// The control protocol (docs/PROTOCOL.md §13): every server instance has
// an instance id and answers PING, INFO and STATS requests, sent to the
// control exchange under a key that addresses every instance, one
// service's or one instance, with a JSON document about itself. [Ping],
// [Info] and [Stats] ask them; the amqprpc command's ls, info and stats
// print the answers.

// ControlExchange is the exchange control requests are published to: a
// direct exchange, not durable, auto-delete, which every server instance
// declares so (it goes once the last instance has gone).
const ControlExchange = "amqprpc.control"

// The types of control request, the type property of a control request and
// the "type" field of the answer.
const (
	ControlPing  = "PING"  // who serves: service, instance id, version, metadata
	ControlInfo  = "INFO"  // PING's fields, and where and how the instance runs
	ControlStats = "STATS" // INFO's fields, and what the instance has done
)

// The routing keys of the control exchange. An instance's control queue is
// bound under all three; a queue name too long for the service key (over
// 247 bytes) has none, and its instances are asked through the key of all.
const (
	controlKeyAll      = "all"
	controlKeyService  = "service:"  // + the service queue
	controlKeyInstance = "instance:" // + the instance id
)

// maxInstanceID bounds an instance id, so that its routing key fits an
// AMQP short string.
const maxInstanceID = 200

// serviceKey returns the key that addresses every instance of queue, or
// false when the name is too long for a routing key.
func serviceKey(queue string) (string, bool) {
	key := controlKeyService + queue
	return key, len(key) <= maxShortString
}

// Instance is a server instance's answer to a control request. A PING
// answer fills Type to Metadata; INFO adds Host to InFlight; STATS adds
// Refused and Methods.
type Instance struct {
	Type     string            `json:"type"`     // the request's type: PING, INFO or STATS
	Service  string            `json:"service"`  // the service queue
	ID       string            `json:"id"`       // the instance id, unique to one Serve (or server codec)
	Version  string            `json:"version"`  // the service's version, from WithVersion; "" when not set
	Metadata map[string]string `json:"metadata"` // from WithMetadata
	Host     string            `json:"host"`     // the host name of the machine
	PID      int               `json:"pid"`      // the process id
	Started  time.Time         `json:"started"`  // when the instance started
	Prefetch int               `json:"prefetch"` // the requests it takes at once
	InFlight int64             `json:"in_flight"`
	Refused  uint64            `json:"refused"` // requests refused before a method ran
	Methods  []MethodStats     `json:"methods"` // sorted by name
	// Raw is the document as the instance sent it, with any fields this
	// version does not know.
	Raw json.RawMessage `json:"-"`
}

// MethodStats is what one instance has done with one method since it
// started: the calls it ran and answered, those whose caller got an error,
// and the time from taking each request to its reply being ready to
// publish.
type MethodStats struct {
	Name                  string        `json:"name"` // "Service.Method"
	Calls                 uint64        `json:"calls"`
	Errors                uint64        `json:"errors"`
	ProcessingTime        time.Duration `json:"processing_time_ns"`
	AverageProcessingTime time.Duration `json:"average_processing_time_ns"`
	LastError             string        `json:"last_error"` // "" when none failed
}

// WithVersion sets the version a server instance gives in its answers to
// control requests (docs/PROTOCOL.md §13), such as "1.4.2". None by
// default.
func WithVersion(v string) ServerOption { return server(func(o *serverOptions) { o.version = v }) }

// WithMetadata adds entries to the metadata a server instance gives in its
// answers to control requests (a region, a git commit). m is copied. None
// by default.
func WithMetadata(m map[string]string) ServerOption {
	return server(func(o *serverOptions) {
		if o.metadata == nil {
			o.metadata = make(map[string]string, len(m))
		}
		maps.Copy(o.metadata, m)
	})
}

// WithoutControl turns the control protocol off for a server: it declares
// no control queue, answers no control request and keeps no counters, and
// amqprpc ls, info and stats do not see it. On by default.
func WithoutControl() ServerOption { return server(func(o *serverOptions) { o.noControl = true }) }

// instance is a server codec as the control protocol shows it.
type instance struct {
	ping  pingDoc
	info  infoDoc // ping's fields are filled in as it is sent
	stats *serverStats
}

type pingDoc struct {
	Type     string            `json:"type"`
	Service  string            `json:"service"`
	ID       string            `json:"id"`
	Version  string            `json:"version"`
	Metadata map[string]string `json:"metadata"`
}

type infoDoc struct {
	pingDoc
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Started  time.Time `json:"started"`
	Prefetch int       `json:"prefetch"`
	InFlight int64     `json:"in_flight"`
}

type statsDoc struct {
	infoDoc
	Refused uint64        `json:"refused"`
	Methods []MethodStats `json:"methods"`
}

// newControl returns the counters and the control configuration of a server
// codec of queue; both are nil with WithoutControl.
func newControl(queue string, o *serverOptions) (*serverStats, *transport.ControlConfig) {
	if o.noControl {
		return nil, nil
	}
	id := newInstanceID()
	host, _ := os.Hostname()
	metadata := maps.Clone(o.metadata)
	if metadata == nil {
		metadata = map[string]string{}
	}
	in := &instance{stats: &serverStats{}}
	in.ping = pingDoc{Type: ControlPing, Service: queue, ID: id, Version: o.version, Metadata: metadata}
	in.info = infoDoc{Host: host, PID: os.Getpid(), Started: time.Now().UTC(), Prefetch: o.prefetch}
	keys := []string{controlKeyAll, controlKeyInstance + id}
	if key, ok := serviceKey(queue); ok {
		keys = append(keys, key)
	}
	return in.stats, &transport.ControlConfig{Exchange: ControlExchange, Keys: keys, Answer: in.answer}
}

// newInstanceID returns 16 random hex digits.
func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails
	return hex.EncodeToString(b[:])
}

// answer replies to a control request with the document of its type, or
// with an error for a type it does not know. It runs on the control
// channel's goroutine.
func (in *instance) answer(req *amqp.Delivery) amqp.Publishing {
	msg := amqp.Publishing{ContentType: codec.JSONContentType}
	doc, err := in.document(req.Type)
	if err == nil {
		msg.Body, err = json.Marshal(doc)
	}
	if err != nil {
		msg.Headers = amqp.Table{ErrorHeader: truncateUTF8(err.Error(), maxErrorText)}
	}
	return msg
}

// document returns the answer to a control request of type typ.
func (in *instance) document(typ string) (any, error) {
	ping := in.ping
	ping.Type = typ
	switch typ {
	case ControlPing:
		return ping, nil
	case ControlInfo:
		info := in.info
		info.pingDoc = ping
		info.InFlight, _, _ = in.stats.snapshot()
		return info, nil
	case ControlStats:
		s := statsDoc{infoDoc: in.info}
		s.pingDoc = ping
		s.InFlight, s.Refused, s.Methods = in.stats.snapshot()
		if s.Methods == nil {
			s.Methods = []MethodStats{}
		}
		return s, nil
	}
	return nil, fmt.Errorf("amqprpc: unknown control request type %.64q (want %s, %s or %s)", typ, ControlPing, ControlInfo, ControlStats)
}
