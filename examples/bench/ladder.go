package main

import (
	"log"
	"strconv"
	"time"

	"github.com/amqprpc/amqprpc"
	"github.com/amqprpc/amqprpc/codec"
	"github.com/amqprpc/amqprpc/examples/floor"
)

// idleTime is how long the broker's and this process's CPU time is read,
// before the ladder, while no calls are made.
const idleTime = time.Second

// ladderCallers is the concurrency every step of the ladder is measured at.
const ladderCallers = 128

// ladderAckRun is how many answered requests the floors that acknowledge
// in runs let wait before one basic.ack with multiple=true (they also
// acknowledge whenever no request is waiting): a quarter of the default
// prefetch.
const ladderAckRun = amqprpc.DefaultPrefetch / 4

// rung is one step of the cost ladder: a transport, the step it adds to,
// and its rounds.
type rung struct {
	transport
	base int // the index of the step this one adds to; -1 for the first
	s    series
}

// wireSteps are the echo floor's options from the bare floor up to
// amqprpc's wire (its properties and queue), one thing added at a time:
// echo, durable, mandatory, expiration, message-id, type.
func wireSteps() []floor.EchoOptions {
	echo := floor.EchoOptions{}
	durable := echo
	durable.DurableQueue = true
	mandatory := durable
	mandatory.Mandatory = true
	expires := mandatory
	expires.Expiration = strconv.FormatInt(amqprpc.DefaultCallTimeout.Milliseconds(), 10)
	messageID := expires
	messageID.MessageID = true
	typed := messageID
	typed.Type, typed.ContentType = small.method, codec.GobContentType
	return []floor.EchoOptions{echo, durable, mandatory, expires, messageID, typed}
}

// sameAsAmqprpc is the floor closest to amqprpc with defaults: its wire,
// and acknowledgements in runs as its server makes them (used with gob
// both ways, it is the ladder's step 11).
func sameAsAmqprpc() floor.EchoOptions {
	w := wireSteps()
	o := w[len(w)-1]
	o.AckRun = ladderAckRun
	return o
}

// ladder is the cost ladder: the echo floor, then one thing added at a
// time, up to amqprpc with confirms; then side steps that acknowledge in
// runs. All use the small payload and a private reply queue.
func ladder() []*rung {
	w := wireSteps()
	echo, durable, mandatory, expires, messageID, typed := w[0], w[1], w[2], w[3], w[4], w[5]
	echoRuns, typedRuns := echo, sameAsAmqprpc()
	echoRuns.AckRun = ladderAckRun
	echoOneWrite, typedRunsOneWrite := echo, typedRuns
	echoOneWrite.Coalesce, typedRunsOneWrite.Coalesce = ladderAckRun, ladderAckRun
	step := func(base int, name, about string, start func(string, string) (caller, func(), error)) *rung {
		return &rung{transport: transport{name: name, about: about, start: start}, base: base}
	}
	return []*rung{
		step(-1, "echo", "echo floor: transient exclusive service queue, requests with correlation_id and reply_to only, bytes echoed, one basic.ack per request",
			echoStart(echo, false)),
		step(0, "durable", "+ durable service queue (not exclusive)", echoStart(durable, false)),
		step(1, "mandatory", "+ `mandatory` on requests (and a basic.return listener)", echoStart(mandatory, false)),
		step(2, "expiration", "+ `expiration` \""+expires.Expiration+"\" on requests", echoStart(expires, false)),
		step(3, "message-id", "+ `message_id`, a new random UUID per request", echoStart(messageID, false)),
		step(4, "type", "+ `type` on requests, `content_type` on requests and replies", echoStart(typed, false)),
		step(5, "gob", "+ gob encoding of a small struct, both directions (amqprpc's codec package)", echoStart(typed, true)),
		step(6, "amqprpc", "amqprpc with defaults: + net/rpc's goroutines and amqprpc's own code", amqpStart(codec.Gob, false)),
		step(7, "confirms", "+ publisher confirms (`WithConfirms`, both sides)", amqpStart(codec.Gob, false, amqprpc.WithConfirms())),
		step(0, "echo-runs", "echo floor acknowledging in runs (multiple=true)", echoStart(echoRuns, false)),
		step(6, "gob-runs", "gob floor (step 7) acknowledging in runs (multiple=true)", echoStart(typedRuns, true)),
		step(0, "echo-one-write", "echo floor whose server writes its replies and their acks in one TCP write while requests wait (up to "+
			strconv.Itoa(ladderAckRun)+")", echoStart(echoOneWrite, false)),
		step(10, "gob-runs-one-write", "gob floor acknowledging in runs (step 11), each run's replies and ack in one TCP write", echoStart(typedRunsOneWrite, true)),
		step(7, "no-control", "amqprpc (step 8) with the control protocol off (`WithoutControl`): no per-method counters, no control queue; its Δ is minus what the protocol costs",
			amqpStartServer(codec.Gob, false, []amqprpc.ServerOption{amqprpc.WithoutControl()})),
	}
}

// measureLadder measures every step at ladderCallers, round after round,
// each round starting one step further on.
func (r *run) measureLadder() {
	r.ladder = ladder()
	ts := make([]*transport, len(r.ladder))
	for i, g := range r.ladder {
		ts[i] = &g.transport
	}
	startAll(r.url, "amqprpc-bench-ladder-", ts)
	u0 := r.meter.read()
	time.Sleep(idleTime)
	r.idle = r.meter.read().since(u0)
	slice := r.ladderTime / time.Duration(r.rounds)
	for round := range r.rounds {
		visit(ts, round, func(t *transport) {
			for _, g := range r.ladder {
				if &g.transport == t {
					g.s.add(r.measureOne(t, small, ladderCallers, r.ladderWarmup, slice))
				}
			}
		})
		log.Printf("ladder: round %d of %d done after %v", round+1, r.rounds, time.Since(r.started).Round(time.Second))
	}
	for _, g := range r.ladder {
		g.s.sum.finish()
	}
	stopAll(ts)
}
