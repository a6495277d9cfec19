package amqprpc

// A randomized stress test of the client codec on a fake transport: random
// interleavings of calls (client.Go, and Call with contexts that end),
// timeouts, session losses and comebacks, confirms and nacks, returned
// requests, replies, duplicate, stray, late and malformed replies. Whatever
// the order, every call ends exactly once with an error of the right class,
// a call said not sent was never published, a reply reaches its own call,
// no goroutine is left behind, and the codec holds no call and no slot that
// no caller waits for (the failures queue's own bound is batch_test.go's). A fixed set
// of seeds runs with the tests; FuzzClientCodec runs the same script
// language for as long as one likes (make fuzz).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/rpc"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/amqprpc/amqprpc/codec"
)

// stressOps is how many operations a seed's script holds.
const stressOps = 400

func TestClientCodecUnderRandomInterleavings(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, seed))
			script := make([]byte, stressOps*2)
			for i := range script {
				script[i] = byte(r.UintN(256))
			}
			runStress(t, script)
		})
	}
}

// FuzzClientCodec runs scripts the fuzzer makes (see runStress).
func FuzzClientCodec(f *testing.F) {
	f.Add([]byte{0, 0, 5, 0, 2, 0, 3, 0, 5, 1, 1, 30})
	f.Add([]byte{1, 3, 0, 0, 0, 1, 4, 0, 2, 0, 3, 0, 6, 0, 9, 1, 10, 20})
	f.Add([]byte{2, 2, 1, 200, 0, 0, 8, 0, 7, 0, 5, 0, 6, 0})
	f.Fuzz(func(t *testing.T, script []byte) {
		if len(script) > 200 {
			script = script[:200]
		}
		runStress(t, script)
	})
}

// stressCall is a call the script made, and what became of it.
type stressCall struct {
	n    int // its argument A; the reply must be n*3
	call *rpc.Call
	done chan error // for Call: its return
}

// stress runs one script against a client codec on a fake transport.
type stress struct {
	t      testing.TB
	c      *clientCodec
	f      *fakeTransport
	client *rpc.Client
	gen    uint64 // the fake's session; 0: none
	next   uint64 // the next session
	calls  []*stressCall
	ready  sync.WaitGroup // SessionReady calls, run on goroutines as the transport does
	cancel []context.CancelFunc
}

// runStress interprets script, two bytes an operation: what, then a
// parameter. The first byte picks the codec's options.
func runStress(t testing.TB, script []byte) {
	if len(script) == 0 {
		return
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	opts := []ClientOption{WithCallTimeout([]time.Duration{0, 15 * time.Millisecond, 40 * time.Millisecond}[script[0]%3])}
	if script[0]&4 != 0 {
		opts = append(opts, WithConfirms())
	}
	if script[0]&8 != 0 {
		opts = append(opts, WithMaxInFlight(3))
	}
	o, err := newClientOptions(append([]ClientOption{WithEncoding(codec.JSON)}, opts...))
	if err != nil {
		t.Fatal(err)
	}
	s := &stress{t: t, f: newFakeTransport(1), gen: 1, next: 2}
	s.c = newCodec("svc", o)
	s.c.start(s.f)
	s.client = rpc.NewClientWithCodec(s.c)
	for i := 1; i+1 < len(script); i += 2 {
		s.step(script[i], script[i+1])
	}
	s.ready.Wait()
	s.client.Close()
	s.check()
	for _, cancel := range s.cancel {
		cancel()
	}
}

func (s *stress) step(op, p byte) {
	switch op % 11 {
	case 0:
		n := len(s.calls)
		s.calls = append(s.calls, &stressCall{n: n, call: s.client.Go("Arith.Triple", &Args{n, 3}, new(int), make(chan *rpc.Call, 2))})
	case 1:
		s.callWithContext(time.Duration(p%50) * time.Millisecond)
	case 2:
		if s.gen != 0 {
			s.c.SessionLost(s.gen, errFakeLoss)
			s.f.connect(0)
			s.gen = 0
		}
	case 3:
		if s.gen == 0 {
			s.gen, s.next = s.next, s.next+1
			s.f.connect(s.gen)
			s.ready.Add(1)
			go func(gen uint64) {
				defer s.ready.Done()
				s.c.SessionReady(gen)
			}(s.gen)
		}
	case 4:
		if m, gen, ok := s.published(p); ok {
			s.c.Confirmed(gen, m.CorrelationId, p&1 == 0 || p%7 != 0)
		}
	case 5, 6:
		if m, _, ok := s.published(p); ok {
			s.reply(m, false)
			if op%11 == 6 {
				s.reply(m, false) // a duplicate
			}
		}
	case 7:
		s.f.deliver(amqp.Delivery{CorrelationId: fmt.Sprintf("stray.%d", p), ContentType: "application/json", Body: []byte("1")})
	case 8:
		if m, _, ok := s.published(p); ok {
			s.c.Returned(&amqp.Return{CorrelationId: m.CorrelationId, RoutingKey: "svc", ReplyCode: 312, ReplyText: "NO_ROUTE", Type: m.Type})
		}
	case 9:
		if m, _, ok := s.published(p); ok {
			s.reply(m, true)
		}
	case 10:
		time.Sleep(time.Duration(p%20) * time.Millisecond) // let deadlines pass
	}
}

// callWithContext makes a call with Call, whose context ends after d (0:
// only when the script ends).
func (s *stress) callWithContext(d time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	if d > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), d)
	}
	s.cancel = append(s.cancel, cancel)
	sc := &stressCall{n: len(s.calls), done: make(chan error, 1)}
	s.calls = append(s.calls, sc)
	reply := new(int)
	go func() {
		err := Call(ctx, s.client, "Arith.Triple", &Args{sc.n, 3}, reply)
		if err == nil && *reply != sc.n*3 {
			err = fmt.Errorf("call %d answered %d; want %d", sc.n, *reply, sc.n*3)
		}
		sc.done <- err
	}()
}

// published returns one of the requests published so far, picked by p.
func (s *stress) published(p byte) (amqp.Publishing, uint64, bool) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if len(s.f.published) == 0 {
		return amqp.Publishing{}, 0, false
	}
	i := len(s.f.published) - 1 - int(p)%len(s.f.published)
	return s.f.published[i], s.f.gens[i], true
}

// reply answers a published request, as a server would: n*3.
func (s *stress) reply(m amqp.Publishing, malformed bool) {
	var a Args
	if err := json.Unmarshal(m.Body, &a); err != nil {
		s.t.Fatalf("a published request does not decode: %v", err)
	}
	body := fmt.Appendf(nil, "%d", a.A*a.B)
	if malformed {
		body = []byte("{")
	}
	s.f.deliver(amqp.Delivery{CorrelationId: m.CorrelationId, ContentType: "application/json", Body: body})
}

// check waits for every call to end and checks how each ended.
func (s *stress) check() {
	t := s.t
	sent := map[int]bool{} // by argument
	for _, m := range s.f.sent() {
		var a Args
		_ = json.Unmarshal(m.Body, &a)
		sent[a.A] = true
	}
	shutdown := 0 // calls net/rpc failed as the client closed; the codec may hold them still
	for _, sc := range s.calls {
		err := s.wait(sc)
		if errors.Is(err, rpc.ErrShutdown) {
			shutdown++
		}
		if err == nil {
			if !sent[sc.n] {
				t.Errorf("call %d answered, but its request was never published", sc.n)
			}
			continue
		}
		if errors.Is(Cause(err), ErrNotSent) && sent[sc.n] {
			t.Errorf("call %d failed as not sent (%v), but its request was published", sc.n, err)
		}
		if !expectedFailure(err) {
			t.Errorf("call %d failed with %v (%T); want an amqprpc failure, a context's end or rpc.ErrShutdown", sc.n, err, err)
		}
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	pending := s.c.calls.len()
	if pending > shutdown {
		t.Errorf("%d calls pending after every call ended, %d of them as the client closed", pending, shutdown)
	}
	if s.c.slots != nil && len(s.c.slots) != pending {
		t.Errorf("%d WithMaxInFlight slots taken for %d pending calls", len(s.c.slots), pending)
	}
}

// wait returns how sc ended, checking that it ended exactly once.
func (s *stress) wait(sc *stressCall) error {
	timeout := time.After(10 * time.Second)
	if sc.done != nil {
		select {
		case err := <-sc.done:
			return err
		case <-timeout:
			s.t.Fatalf("Call %d did not return", sc.n)
		}
	}
	select {
	case c := <-sc.call.Done:
		select {
		case <-sc.call.Done:
			s.t.Errorf("call %d ended twice", sc.n)
		default:
		}
		if c.Error == nil && *c.Reply.(*int) != sc.n*3 {
			return fmt.Errorf("call %d answered %d; want %d", sc.n, *c.Reply.(*int), sc.n*3)
		}
		return c.Error
	case <-timeout:
		s.t.Fatalf("call %d did not end", sc.n)
	}
	return nil
}

// expectedFailure reports whether err is a way a call may fail here.
func expectedFailure(err error) bool {
	if errors.Is(err, rpc.ErrShutdown) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	cause := Cause(err)
	for _, s := range []error{ErrTimeout, ErrConnectionLost, ErrNacked, ErrNoQueue, ErrMalformedReply, ErrTooManyCalls, ErrClosed} {
		if errors.Is(cause, s) {
			return true
		}
	}
	return false
}
