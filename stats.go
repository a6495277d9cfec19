package amqprpc

import (
	"maps"
	"slices"
	"sync/atomic"
	"time"
)

// serverStats counts what a server codec does, for the control protocol's
// STATS (control.go): the calls in flight, and per method the calls, the
// failed ones, their processing time and the last error. A call costs it
// a few atomic additions and a map lookup, no allocation (a failed call
// stores its error text, one small allocation) and no lock: the method
// table is copied on write, and only the outbox's goroutine writes it.
//
// Only methods net/rpc found are counted by name, so that the table holds
// no more than the service's methods whatever names requests carry;
// requests refused before a method ran (an unknown method, no method, an
// unsupported content type, a body over the limit) are counted together.
type serverStats struct {
	inFlight atomic.Int64  // requests taken and not yet answered
	refused  atomic.Uint64 // requests answered with an error before reaching a method
	methods  atomic.Pointer[map[string]*methodCounters]
}

// methodCounters are one method's counters.
type methodCounters struct {
	calls  atomic.Uint64
	errors atomic.Uint64
	nanos  atomic.Int64 // processing time of all calls
	last   atomic.Pointer[string]
}

// maxLastError bounds the error text kept as a method's last error.
const maxLastError = 512

// begin counts a request the codec has taken. A nil s counts nothing
// (WithoutControl).
func (s *serverStats) begin(in *inbound) {
	if s == nil {
		return
	}
	in.taken = time.Now()
	s.inFlight.Add(1)
}

// drop forgets a request taken and given back to the queue unanswered.
func (s *serverStats) drop() {
	if s != nil {
		s.inFlight.Add(-1)
	}
}

// end counts a request whose reply is about to be published: errText is
// the error its caller gets, "" for a result. It runs on the outbox's
// goroutine, before the reply goes out, so that a caller who has its reply
// finds it counted.
func (s *serverStats) end(in *inbound, errText string) {
	if s == nil {
		return
	}
	s.inFlight.Add(-1)
	switch {
	case in.seq == 0 && in.req.Type == PingType:
		return // answered by the codec, no call
	case in.stored:
		return // answered from the reply store: the method did not run
	case !in.known:
		s.refused.Add(1)
		return
	}
	m := s.method(in.method)
	m.calls.Add(1)
	m.nanos.Add(int64(time.Since(in.taken)))
	if errText != "" {
		m.errors.Add(1)
		text := truncateUTF8(errText, maxLastError)
		m.last.Store(&text)
	}
}

// method returns the counters of a method, adding them to a copy of the
// table the first time. Only the outbox's goroutine calls it.
func (s *serverStats) method(name string) *methodCounters {
	table := s.methods.Load()
	if table != nil {
		if m, ok := (*table)[name]; ok {
			return m
		}
	}
	grown := make(map[string]*methodCounters, 1)
	if table != nil {
		grown = maps.Clone(*table)
	}
	m := &methodCounters{}
	grown[name] = m
	s.methods.Store(&grown)
	return m
}

// snapshot returns the counters as they are now, methods sorted by name.
func (s *serverStats) snapshot() (inFlight int64, refused uint64, methods []MethodStats) {
	table := s.methods.Load()
	if table != nil {
		for _, name := range slices.Sorted(maps.Keys(*table)) {
			methods = append(methods, (*table)[name].read(name))
		}
	}
	return max(s.inFlight.Load(), 0), s.refused.Load(), methods
}

// read returns one method's counters.
func (m *methodCounters) read(name string) MethodStats {
	ms := MethodStats{
		Name:           name,
		Calls:          m.calls.Load(),
		Errors:         m.errors.Load(),
		ProcessingTime: time.Duration(m.nanos.Load()),
	}
	if ms.Calls > 0 {
		ms.AverageProcessingTime = ms.ProcessingTime / time.Duration(ms.Calls)
	}
	if last := m.last.Load(); last != nil {
		ms.LastError = *last
	}
	return ms
}
