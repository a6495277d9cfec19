package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/amqprpc/amqprpc/examples/kitchen/services"

	"github.com/amqprpc/amqprpc/internal/brokertest"
)

// TestRun runs the example against the broker: the stdout exporter's JSON
// holds seven spans of one trace, and the tree draws them.
func TestRun(t *testing.T) {
	url := brokertest.URL(t) // the kitchen's queues expire by themselves

	var spans, out bytes.Buffer
	q := services.NewQueues("amqprpc-otel-example-" + strings.ToLower(rand.Text()[:8]))
	if err := run(context.Background(), url, q, &spans, &out); err != nil {
		t.Fatalf("run = %v", err)
	}
	traces := make(map[string]int)
	names := make(map[string]bool)
	for dec := json.NewDecoder(&spans); ; {
		var s struct {
			Name        string
			SpanContext struct{ TraceID string }
		}
		if err := dec.Decode(&s); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("the exporter's output does not decode: %v", err)
		}
		traces[s.SpanContext.TraceID]++
		names[s.Name] = true
	}
	if len(traces) != 1 {
		t.Errorf("spans in %d traces (%v); want one", len(traces), traces)
	}
	for id, n := range traces {
		if n != 7 {
			t.Errorf("trace %s has %d spans; want 7: the customer's, and a CLIENT and a SERVER span per call", id, n)
		}
	}
	for _, name := range []string{"Chef.Cook", "PrepCook.Wash", "Cutter.Cut"} {
		if !names[name] {
			t.Errorf("no span named %s in %v", name, names)
		}
		if got := strings.Count(out.String(), name+" ("); got != 2 {
			t.Errorf("the tree shows %s %d times; want its CLIENT and SERVER spans:\n%s", name, got, out.String())
		}
	}
}
