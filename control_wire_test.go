package amqprpc

// The control protocol on the wire, as a client in another language sees
// it (docs/PROTOCOL.md §13): the exchange, the documents' fields, the
// error reply to an unknown type, and the requests an instance does not
// answer.

import (
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// The fields of each control document, as PROTOCOL.md §13 lists them.
var (
	controlPingFields  = []string{"type", "service", "id", "version", "metadata"}
	controlInfoFields  = append(slices.Clone(controlPingFields), "host", "pid", "started", "prefetch", "in_flight")
	controlStatsFields = append(slices.Clone(controlInfoFields), "refused", "methods")
	controlMethodField = []string{"name", "calls", "errors", "processing_time_ns", "average_processing_time_ns", "last_error"}
)

// controlRaw publishes a control request of type typ with the key of the
// instance id, through the default exchange for the answer, and returns
// the answer from replyQueue.
func controlRaw(t *testing.T, ch *amqp.Channel, answers <-chan amqp.Delivery, replyQueue, id, typ string) amqp.Delivery {
	t.Helper()
	corr := "wire-" + typ
	err := ch.Publish(ControlExchange, controlKeyInstance+id, true, false, amqp.Publishing{
		Type: typ, ReplyTo: replyQueue, CorrelationId: corr, Expiration: "10000",
	})
	require.NoError(t, err)
	d := brokertest.NextDelivery(t, answers, typ+" answer")
	require.Equal(t, corr, d.CorrelationId, "%s answer: correlation_id", typ)
	return d
}

func TestControlWire(t *testing.T) {
	url := brokertest.URL(t)
	queue := testQueue(t)
	s := serveArith(t, newArith("wire"), url, queue, WithVersion("2.0.1"), WithPrefetch(7))
	brokertest.WaitForConsumers(t, url, queue, 1, s)
	client := dial(t, queue)
	const secret = "an argument no control answer may carry"
	var p Payload
	require.NoError(t, client.Call("Arith.Echo", &Payload{Note: secret}, &p))

	conn, ch := rawConn(t)
	instances := controlAsk(t, Ping, url, queue)
	require.Len(t, instances, 1)
	id := instances[0].ID
	assert.Regexp(t, "^[0-9a-f]{16}$", id, "instance id")
	rq, err := ch.QueueDeclare("", false, true, true, false, nil)
	require.NoError(t, err)
	answers := brokertest.Consume(t, ch, rq.Name)

	t.Run("exchange", func(t *testing.T) {
		// Declaring it as PROTOCOL.md says works; any other way is refused.
		other, err := conn.Channel()
		require.NoError(t, err)
		defer other.Close()
		require.NoError(t, other.ExchangeDeclare(ControlExchange, "direct", false, true, false, false, nil))
		err = other.ExchangeDeclare(ControlExchange, "direct", true, false, false, false, nil)
		assert.ErrorContains(t, err, "PRECONDITION_FAILED", "declaring %s durable", ControlExchange)
	})

	t.Run("documents", func(t *testing.T) {
		for _, tc := range []struct {
			typ    string
			fields []string
		}{
			{ControlPing, controlPingFields},
			{ControlInfo, controlInfoFields},
			{ControlStats, controlStatsFields},
		} {
			d := controlRaw(t, ch, answers, rq.Name, id, tc.typ)
			assert.Equal(t, "application/json", d.ContentType, "%s: content_type", tc.typ)
			assert.Nil(t, d.Headers[ErrorHeader], "%s: %s", tc.typ, ErrorHeader)
			var doc map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(d.Body, &doc), "%s answer %s", tc.typ, d.Body)
			assert.ElementsMatch(t, tc.fields, slices.Collect(maps.Keys(doc)), "%s: fields of %s", tc.typ, d.Body)
			assert.JSONEq(t, `"`+tc.typ+`"`, string(doc["type"]), "%s: type", tc.typ)
			assert.JSONEq(t, `"`+queue+`"`, string(doc["service"]), "%s: service", tc.typ)
			assert.JSONEq(t, `"2.0.1"`, string(doc["version"]), "%s: version", tc.typ)
			assert.NotContains(t, string(d.Body), secret, "%s answer", tc.typ)
			if tc.typ == ControlStats {
				var methods []map[string]any
				require.NoError(t, json.Unmarshal(doc["methods"], &methods))
				require.Len(t, methods, 1, "STATS methods")
				assert.ElementsMatch(t, controlMethodField, slices.Collect(maps.Keys(methods[0])), "fields of a method")
				assert.Equal(t, "Arith.Echo", methods[0]["name"])
			}
			if tc.typ == ControlInfo {
				assert.JSONEq(t, "7", string(doc["prefetch"]), "INFO: prefetch")
				var started time.Time
				require.NoError(t, json.Unmarshal(doc["started"], &started), "INFO: started")
				assert.WithinDuration(t, time.Now(), started, time.Minute, "INFO: started")
			}
		}
	})

	t.Run("unknown type", func(t *testing.T) {
		d := controlRaw(t, ch, answers, rq.Name, id, "HEALTH")
		text, _ := d.Headers[ErrorHeader].(string)
		assert.True(t, strings.HasPrefix(text, "amqprpc: unknown control request type"), "%s = %q", ErrorHeader, text)
		assert.Empty(t, d.Body)
	})

	t.Run("direct reply-to is not answered", func(t *testing.T) {
		direct := brokertest.Consume(t, ch, "amq.rabbitmq.reply-to")
		require.NoError(t, ch.Publish(ControlExchange, controlKeyInstance+id, false, false, amqp.Publishing{
			Type: ControlPing, ReplyTo: "amq.rabbitmq.reply-to", CorrelationId: "direct",
		}))
		// One instance answers its requests in order: once the next one's
		// answer is in, the first has been dealt with, and an answer to it
		// would be on its way.
		controlRaw(t, ch, answers, rq.Name, id, ControlPing)
		brokertest.NoDelivery(t, direct, 500*time.Millisecond, "an answer through direct reply-to")
	})
}

// TestControlProtocolDocFields: the field table of docs/PROTOCOL.md §13
// lists exactly the fields each document has.
func TestControlProtocolDocFields(t *testing.T) {
	doc, err := os.ReadFile("docs/PROTOCOL.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(doc), "\n## 13. ")
	require.True(t, ok, "docs/PROTOCOL.md has no section 13")
	in := map[string][]string{}
	var method []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_.\\[\\]]+)` \\|([^|]*)\\|").FindAllStringSubmatch(section, -1) {
		field, where := m[1], strings.TrimSpace(m[2])
		if name, ok := strings.CutPrefix(field, "methods[]."); ok {
			method = append(method, name)
			continue
		}
		in[where] = append(in[where], field)
	}
	assert.ElementsMatch(t, controlPingFields, in["all"], "PING fields in the doc")
	assert.ElementsMatch(t, controlInfoFields, append(in["all"], in["`INFO`, `STATS`"]...), "INFO fields in the doc")
	assert.ElementsMatch(t, controlStatsFields, append(append(in["all"], in["`INFO`, `STATS`"]...), in["`STATS`"]...), "STATS fields in the doc")
	assert.ElementsMatch(t, controlMethodField, method, "method fields in the doc")
}
