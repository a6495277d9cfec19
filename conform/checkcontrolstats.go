package conform

// The control-stats check (docs/PROTOCOL.md §13): what a STATS answer
// counts, before and after calls of the checker's own.

import (
	"encoding/json"
	"fmt"
	"strings"
)

// controlStats is what a STATS answer says.
type controlStats struct {
	refused int64
	methods map[string]methodStats
}

type methodStats struct {
	Name                    string
	Calls, Errors           int64
	ProcessingTime, Average int64
	LastError               string
}

func checkControlStats(k *checker) error {
	before, err := k.stats()
	if err != nil {
		return err
	}
	const echoes, fails = 3, 2
	failText := k.token + " control-stats failure"
	for i := range echoes {
		if _, err := k.private.call(k.echo(fmt.Sprint("control-stats ", i)), k.timeout); err != nil {
			return fmt.Errorf("calling Conformance.Echo: %w", err)
		}
	}
	for range fails {
		if _, err := k.private.call(request{method: "Conformance.Fail", contentType: jsonContentType, body: jsonString(failText)}, k.timeout); err != nil {
			return fmt.Errorf("calling Conformance.Fail: %w", err)
		}
	}
	if _, err := k.private.call(request{method: "Conformance.NoSuchMethod", contentType: jsonContentType, body: jsonString("x")}, k.timeout); err != nil {
		return fmt.Errorf("calling Conformance.NoSuchMethod: %w", err)
	}
	after, err := k.stats()
	if err != nil {
		return err
	}
	for _, want := range []struct {
		method        string
		calls, errors int64
		last          string
	}{
		{"Conformance.Echo", echoes, 0, before.methods["Conformance.Echo"].LastError},
		{"Conformance.Fail", fails, fails, failText},
	} {
		b, a := before.methods[want.method], after.methods[want.method]
		if a.Calls-b.Calls != want.calls || a.Errors-b.Errors != want.errors {
			return fmt.Errorf("%s: calls %d → %d and errors %d → %d over %d calls (%d failed); want each counted once",
				want.method, b.Calls, a.Calls, b.Errors, a.Errors, want.calls, want.errors)
		}
		if a.LastError != want.last {
			return fmt.Errorf("%s: last_error %.80q; want %.80q", want.method, a.LastError, want.last)
		}
	}
	if n := after.refused - before.refused; n != 1 {
		return fmt.Errorf("refused %d → %d over one request of an unknown method; want it counted once", before.refused, after.refused)
	}
	return nil
}

// stats asks the instance for STATS and reads the answer.
func (k *checker) stats() (controlStats, error) {
	doc, err := k.askInstance("STATS")
	if err != nil {
		return controlStats{}, err
	}
	if err := wantKinds(doc, "refused", "integer", "methods", "array"); err != nil {
		return controlStats{}, err
	}
	var raws []map[string]json.RawMessage
	if err := json.Unmarshal(doc["methods"], &raws); err != nil {
		return controlStats{}, fmt.Errorf("methods is not an array of objects: %v", err)
	}
	s := controlStats{refused: jsonInt(doc["refused"]), methods: map[string]methodStats{}}
	var names []string
	for _, raw := range raws {
		m, err := readMethodStats(raw)
		if err != nil {
			return controlStats{}, err
		}
		names = append(names, m.Name)
		s.methods[m.Name] = m
	}
	if !sortedNames(names) {
		return controlStats{}, fmt.Errorf("methods are not sorted by name: %s", strings.Join(names, ", "))
	}
	return s, nil
}

// readMethodStats reads one entry of methods.
func readMethodStats(raw map[string]json.RawMessage) (methodStats, error) {
	if err := wantKinds(raw, "name", "string", "calls", "integer", "errors", "integer",
		"processing_time_ns", "integer", "average_processing_time_ns", "integer", "last_error", "string"); err != nil {
		return methodStats{}, fmt.Errorf("in methods: %w", err)
	}
	m := methodStats{
		Name: jsonText(raw["name"]), Calls: jsonInt(raw["calls"]), Errors: jsonInt(raw["errors"]),
		ProcessingTime: jsonInt(raw["processing_time_ns"]), Average: jsonInt(raw["average_processing_time_ns"]),
		LastError: jsonText(raw["last_error"]),
	}
	want := int64(0)
	if m.Calls > 0 {
		want = m.ProcessingTime / m.Calls
	}
	switch {
	case m.Calls < 0 || m.Errors < 0 || m.Errors > m.Calls || m.ProcessingTime < 0:
		return m, fmt.Errorf("%s: calls %d, errors %d, processing_time_ns %d", m.Name, m.Calls, m.Errors, m.ProcessingTime)
	case m.Average < want-1 || m.Average > want+1:
		return m, fmt.Errorf("%s: average_processing_time_ns %d; want processing_time_ns / calls, %d", m.Name, m.Average, want)
	}
	return m, nil
}
