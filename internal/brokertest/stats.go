package brokertest

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Stats counts what happened to the calls of a load run, for the fault
// tests' reports (the README's reliability tables are built from them).
// Every call ends in exactly one of Answered, Failed (a clear error), Hung
// (no return within its timeout plus a grace period) or Lost (an answer
// that does not match its request).
type Stats struct {
	Issued, Answered, Failed, Hung, Lost atomic.Int64

	mu     sync.Mutex     // guards errors
	errors map[string]int // failure texts, shortened, by count
}

// NoteError counts a failure by its text, shortened.
func (st *Stats) NoteError(err error) {
	text := err.Error()
	if i := strings.Index(text, " ("); i > 0 {
		text = text[:i]
	}
	st.mu.Lock()
	if st.errors == nil {
		st.errors = map[string]int{}
	}
	st.errors[fmt.Sprintf("%.90s", text)]++
	st.mu.Unlock()
}

// Report logs the counts in one RELIABILITY line, which docs and the
// README's table are built from, and the distinct errors.
func (st *Stats) Report(t testing.TB, scenario string) {
	t.Helper()
	t.Logf("RELIABILITY | %s | issued %d | answered %d | failed with a clear error %d | hung %d | lost %d",
		scenario, st.Issued.Load(), st.Answered.Load(), st.Failed.Load(), st.Hung.Load(), st.Lost.Load())
	st.mu.Lock()
	defer st.mu.Unlock()
	var texts []string
	for text, n := range st.errors {
		texts = append(texts, fmt.Sprintf("%5d × %s", n, text))
	}
	sort.Strings(texts)
	for _, s := range texts {
		t.Logf("  %s", s)
	}
}

// Check fails the test unless every call was answered or failed clearly
// (and, without allowFailures, answered).
func (st *Stats) Check(t testing.TB, allowFailures bool) {
	t.Helper()
	if st.Hung.Load() != 0 || st.Lost.Load() != 0 {
		t.Errorf("hung %d, lost %d; want 0 and 0", st.Hung.Load(), st.Lost.Load())
	}
	if !allowFailures && st.Failed.Load() != 0 {
		t.Errorf("failed %d; want 0", st.Failed.Load())
	}
	if sum := st.Answered.Load() + st.Failed.Load() + st.Hung.Load() + st.Lost.Load(); sum != st.Issued.Load() {
		t.Errorf("issued %d but accounted for %d", st.Issued.Load(), sum)
	}
	if st.Answered.Load() == 0 {
		t.Errorf("no call was answered")
	}
}
