package amqprpc

import (
	"runtime"
	"sync"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"

	"github.com/amqprpc/amqprpc/transport"
)

// statsInbound is a request net/rpc found the method of.
func statsInbound(method string, seq uint64) *inbound {
	return &inbound{req: transport.Request{Delivery: amqp.Delivery{Type: method}}, method: method, seq: seq, known: true}
}

// TestStatsNoAllocation: counting a successful call of a method seen
// before costs no allocation, and nothing at all is counted without
// control.
func TestStatsNoAllocation(t *testing.T) {
	s := &serverStats{}
	in := statsInbound("Arith.Multiply", 1)
	s.begin(in)
	s.end(in, "")
	if n := testing.AllocsPerRun(1000, func() {
		s.begin(in)
		s.end(in, "")
	}); n != 0 {
		t.Errorf("begin and end of a call: %v allocations; want 0", n)
	}
	var nilStats *serverStats // WithoutControl
	if n := testing.AllocsPerRun(1000, func() {
		nilStats.begin(in)
		nilStats.end(in, "")
	}); n != 0 {
		t.Errorf("without control: %v allocations; want 0", n)
	}
}

// TestStatsCounts: calls, errors, the last error, refusals, pings and calls
// in flight, counted from goroutines like the codec's (one taking
// requests, one ending them) while another reads.
func TestStatsCounts(t *testing.T) {
	s := &serverStats{}
	const n = 2000
	taken := make(chan *inbound, 64)
	ended := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the reading goroutine
		defer close(taken)
		for i := range n {
			var in *inbound
			switch i % 4 {
			case 0, 1:
				in = statsInbound("A.Ok", uint64(i+1))
			case 2:
				in = statsInbound("B.Fails", uint64(i+1))
			default:
				in = statsInbound("C.Unknown", uint64(i+1))
				in.known = false // net/rpc found no such method
			}
			s.begin(in)
			taken <- in
		}
		ping := &inbound{req: transport.Request{Delivery: amqp.Delivery{Type: PingType}}, method: PingType}
		s.begin(ping)
		taken <- ping
	})
	wg.Go(func() { // the outbox
		defer close(ended)
		for in := range taken {
			errText := ""
			if in.method == "B.Fails" {
				errText = "failed " + in.method
			}
			s.end(in, errText)
		}
	})
	wg.Go(func() { // control requests all along
		for {
			select {
			case <-ended:
				return
			default:
				s.snapshot()
				runtime.Gosched()
			}
		}
	})
	wg.Wait()
	inFlight, refused, methods := s.snapshot()
	assert.Zero(t, inFlight, "in flight")
	assert.EqualValues(t, n/4, refused, "refused")
	if assert.Len(t, methods, 2) {
		assert.Equal(t, MethodStats{Name: "A.Ok", Calls: n / 2}, zeroTimes(methods[0]))
		assert.Equal(t, MethodStats{Name: "B.Fails", Calls: n / 4, Errors: n / 4, LastError: "failed B.Fails"}, zeroTimes(methods[1]))
		assert.Positive(t, methods[0].ProcessingTime)
	}
}

func zeroTimes(m MethodStats) MethodStats {
	m.ProcessingTime, m.AverageProcessingTime = 0, 0
	return m
}

// TestStatsInFlightAndDrop: requests taken count in flight until ended or
// dropped.
func TestStatsInFlightAndDrop(t *testing.T) {
	s := &serverStats{}
	a, b := statsInbound("A.X", 1), statsInbound("A.X", 2)
	s.begin(a)
	s.begin(b)
	inFlight, _, _ := s.snapshot()
	assert.EqualValues(t, 2, inFlight)
	s.drop()
	s.end(a, "")
	inFlight, _, methods := s.snapshot()
	assert.Zero(t, inFlight)
	assert.EqualValues(t, 1, methods[0].Calls)
}

// TestStatsLastErrorCut: a long error text is kept cut.
func TestStatsLastErrorCut(t *testing.T) {
	s := &serverStats{}
	in := statsInbound("A.X", 1)
	s.begin(in)
	long := string(make([]byte, 4*maxLastError))
	s.end(in, long)
	_, _, methods := s.snapshot()
	assert.LessOrEqual(t, len(methods[0].LastError), maxLastError)
}
