package conform

// The checks of how a server takes requests from its queue
// (docs/PROTOCOL.md §6): a request without a reply_to runs once and is
// acknowledged, the server holds its prefetch and runs all it holds at
// once, and an expired request never runs.

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func checkReplyToAbsent(k *checker) error {
	token := k.token + "-reply-to-absent"
	id, w, err := k.private.send(request{method: "Conformance.Record", contentType: jsonContentType, body: jsonString(token), noReplyTo: true}, k.timeout)
	if err != nil {
		return err
	}
	return k.ranOnceWithoutReply(token, id, w)
}

func checkReplyToEmpty(k *checker) error {
	token := k.token + "-reply-to-empty"
	id := k.token + "-reply-to-empty-call"
	w := k.private.watch(id)
	k.private.giveUp(id) // no reply is wanted
	props := []rawProp{{propType, "Conformance.Record"}, {propContentType, jsonContentType}, {propReplyTo, ""}, {propCorrelationID, id}}
	if err := rawPublish(k.url, k.queue, props, jsonString(token), k.timeout); err != nil {
		k.private.forget(id)
		return fmt.Errorf("publishing with an empty reply_to: %w", err)
	}
	return k.ranOnceWithoutReply(token, id, w)
}

// ranOnceWithoutReply waits until Record ran for token, and checks that it
// ran once, still once after a request sent later is answered, that no
// reply to its request id came, and that the server acknowledged it: it
// then takes a whole prefetch of requests.
func (k *checker) ranOnceWithoutReply(token, id string, w <-chan reply) error {
	defer k.private.forget(id)
	start := time.Now()
	n, err := k.countUntil(token, func(n int) bool { return n > 0 })
	switch {
	case err != nil:
		return err
	case n == 0:
		return fmt.Errorf("the Record request did not run within %v (Count says 0)%s", time.Since(start).Round(time.Millisecond), queueNote(k.conn, k.queue))
	case n > 1:
		return fmt.Errorf("the Record request ran %d times; want once", n)
	}
	if _, err := k.private.call(k.echo("after"), k.timeout); err != nil {
		return fmt.Errorf("a request sent after it: %w", err)
	}
	if n, err = k.count(token); err != nil {
		return err
	} else if n > 1 {
		return fmt.Errorf("the Record request ran once, then again (Count says %d after a later request was answered): a request is run once and acknowledged (§6)", n)
	}
	select {
	case r := <-w:
		return fmt.Errorf("a reply came (to %q, body %+.40q); want none", r.RoutingKey, r.Body)
	default:
	}
	calls, waiting, err := k.fill(k.prefetch, ackProbeSleep)
	if err == nil && waiting > 0 {
		err = fmt.Errorf("afterwards, %d of %d requests sent at once waited in the queue while the server held the others: "+
			"it holds %s it has not acknowledged, such as the request without a reply (§6)", waiting, k.prefetch, plural(waiting, "request"))
	}
	return errors.Join(err, k.awaitAll(calls, ackProbeSleep))
}

// count calls Count for token.
func (k *checker) count(token string) (int, error) {
	r, err := k.private.call(request{method: "Conformance.Count", contentType: jsonContentType, body: jsonString(token)}, k.timeout)
	if err != nil {
		return 0, fmt.Errorf("calling Count: %w", err)
	}
	var n int
	if err := wantJSON(r, &n); err != nil {
		return 0, fmt.Errorf("calling Count: %w", err)
	}
	return n, nil
}

// countUntil calls Count until done(n) holds or the checker's timeout
// passes, and returns the last count.
func (k *checker) countUntil(token string, done func(int) bool) (int, error) {
	deadline := time.Now().Add(k.timeout)
	for {
		n, err := k.count(token)
		if err != nil || done(n) || time.Now().After(deadline) {
			return n, err
		}
		time.Sleep(50 * time.Millisecond) // polling the server's count, with a deadline
	}
}

// sleepCall is a Sleep request sent by fill.
type sleepCall struct {
	id   string
	w    <-chan reply
	sent time.Time
}

// fill sends n calls of Sleep d at once, with publisher confirms, and
// once the broker has them watches the queue until as many wait in it as
// the server's prefetch leaves, or until the first reply comes. It returns
// the calls and how many requests then waited: -1 when a reply came before
// the queue could be seen (a busy machine), which leaves that unknown.
func (k *checker) fill(n int, d time.Duration) ([]sleepCall, int, error) {
	ch, err := k.conn.Channel()
	if err != nil {
		return nil, 0, err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return nil, 0, err
	}
	var calls []sleepCall
	var confirms []*amqp.DeferredConfirmation
	for range n {
		id := k.private.prefix + ".s" + strconv.FormatUint(k.private.seq.Add(1), 10)
		w := k.private.watch(id)
		dc, err := ch.PublishWithDeferredConfirm("", k.queue, true, false, amqp.Publishing{
			CorrelationId: id, ReplyTo: k.private.replyTo, Type: "Conformance.Sleep", ContentType: jsonContentType,
			Body: strconv.AppendInt(nil, d.Milliseconds(), 10), Expiration: strconv.FormatInt((k.timeout + 2*d).Milliseconds(), 10),
		})
		if err != nil {
			k.private.forget(id)
			return calls, 0, fmt.Errorf("publish: %w", err)
		}
		calls = append(calls, sleepCall{id, w, time.Now()})
		confirms = append(confirms, dc)
	}
	ctx, cancel := contextWithTimeout(k.timeout)
	defer cancel()
	for _, dc := range confirms {
		if acked, err := dc.WaitContext(ctx); err != nil || !acked {
			return calls, 0, fmt.Errorf("the broker did not take the Sleep calls (acked %v, %v)", acked, err)
		}
	}
	want := max(n-k.prefetch, 0)
	for {
		q, err := ch.QueueDeclarePassive(k.queue, false, false, false, false, nil)
		switch {
		case err != nil:
			return calls, 0, err
		case k.private.anyReply(calls):
			return calls, -1, nil // the server may have freed a place already
		case q.Messages <= want || time.Since(calls[0].sent) > d:
			return calls, q.Messages, nil
		}
		time.Sleep(10 * time.Millisecond) // polling the broker, until the first reply at the latest
	}
}

// awaitAll waits for the replies to calls, each of which sleeps d.
func (k *checker) awaitAll(calls []sleepCall, d time.Duration) error {
	if len(calls) == 0 {
		return nil
	}
	deadline := calls[0].sent.Add(time.Duration(len(calls))*d + k.timeout)
	for i, c := range calls {
		r, err := k.private.await(c.id, c.w, time.Until(deadline))
		if err == nil {
			err = wantValue(r, d.Milliseconds())
		}
		if err != nil {
			return fmt.Errorf("the Sleep call %d of %d: %w", i+1, len(calls), err)
		}
	}
	return nil
}

// How long the Sleep calls of the probes take.
const (
	ackProbeSleep  = 600 * time.Millisecond
	runsAtOnceTime = 800 * time.Millisecond
)

// checkRunsAtOnce sends one more Sleep than the server's prefetch: exactly
// one must wait in the queue, and the others must be answered together.
func checkRunsAtOnce(k *checker) error {
	d := runsAtOnceTime
	calls, waiting, err := k.fill(k.prefetch+1, d)
	if err != nil {
		return errors.Join(err, k.awaitAll(calls, d))
	}
	start := calls[0].sent
	var problem error
	switch {
	case waiting == 0:
		problem = fmt.Errorf("the server took all %d Sleep calls sent at once: its prefetch is larger than %d (tell the checker with -prefetch)", len(calls), k.prefetch)
	case waiting > 1:
		problem = fmt.Errorf("%d of %d Sleep calls sent at once waited in the queue: the server took %d, fewer than its prefetch of %d, or holds requests it has not acknowledged (§6)",
			waiting, len(calls), len(calls)-waiting, k.prefetch)
	}
	took := make([]time.Duration, 0, len(calls))
	for i, c := range calls {
		r, err := k.private.await(c.id, c.w, time.Until(start.Add(time.Duration(len(calls))*d+k.timeout)))
		if err == nil {
			err = wantValue(r, d.Milliseconds())
		}
		if err != nil {
			return errors.Join(problem, fmt.Errorf("the Sleep call %d of %d: %w", i+1, len(calls), err))
		}
		took = append(took, r.at.Sub(start))
	}
	if problem != nil {
		return problem
	}
	// The first replies, as many as the server held, came together when
	// it ran all it held at once.
	slices.Sort(took)
	if spread := took[k.prefetch-1] - took[0]; spread >= d/2 {
		together := 1
		for together < len(took) && took[together]-took[0] < d/2 {
			together++
		}
		return fmt.Errorf("the server held %d Sleep %v calls, but answered %d of them after %v and the %s after up to %v: it does not run all the requests it holds at once (§4)",
			k.prefetch, d, together, took[0].Round(time.Millisecond), plural(k.prefetch-together, "other"), took[k.prefetch-1].Round(time.Millisecond))
	}
	return nil
}

// expiredSleep is how long the calls that fill the server's prefetch
// take; expiredTTL is the probe's expiration, well within it.
const (
	expiredSleep = 1500 * time.Millisecond
	expiredTTL   = 200 * time.Millisecond
)

// checkExpiredNotRun fills the server's prefetch with Sleep calls, so
// that the next request has to wait in the queue, and sends a Record
// request with a short expiration. The broker must drop it there, so
// Count must still say 0 once the Sleep calls are done.
func checkExpiredNotRun(k *checker) error {
	calls, _, err := k.fill(k.prefetch, expiredSleep)
	if err != nil {
		return errors.Join(err, k.awaitAll(calls, expiredSleep))
	}
	token := k.token + "-expired"
	probeID, probe, waiting, err := k.publishProbe(token)
	if err != nil {
		return errors.Join(err, k.awaitAll(calls, expiredSleep))
	}
	sent := time.Now()
	defer k.private.forget(probeID)
	if err := k.awaitAll(calls, expiredSleep); err != nil {
		return err
	}
	if waiting == 0 {
		return fmt.Errorf("the server took the request with expiration %v at once, while it held %d unanswered requests: "+
			"its prefetch is larger than %d (tell the checker with -prefetch), or it acknowledges requests before it answers them (§6)",
			expiredTTL, k.prefetch, k.prefetch)
	}
	// Whether or not the queue could be seen holding the probe, a server
	// that took it would run it, and Count would say so. Were it delivered
	// now, the probe would come before Count: look twice.
	for i := range 2 {
		if i > 0 {
			time.Sleep(300 * time.Millisecond) // a run that must not happen cannot be waited for
		}
		n, err := k.count(token)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("the request with expiration %v ran (Count says %d), %v after it was sent, while %d requests held the server",
				expiredTTL, n, time.Since(sent).Round(time.Millisecond), k.prefetch)
		}
	}
	select {
	case <-probe:
		return errors.New("the request that expired in the queue was answered")
	default:
		return nil
	}
}

// publishProbe publishes a Record of token with a short expiration on a
// channel with publisher confirms, waits for the broker to take it, and
// says how many requests then wait in the queue: -1 when the broker's
// answer came after the probe could have expired (a busy broker), which
// makes an empty queue say nothing about the server.
func (k *checker) publishProbe(token string) (string, <-chan reply, int, error) {
	ch, err := k.conn.Channel()
	if err != nil {
		return "", nil, 0, err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return "", nil, 0, err
	}
	id := k.token + "-expired-call"
	w := k.private.watch(id)
	k.private.giveUp(id) // it must expire unanswered
	sent := time.Now()
	dc, err := ch.PublishWithDeferredConfirm("", k.queue, true, false, amqp.Publishing{
		CorrelationId: id,
		ReplyTo:       k.private.replyTo,
		Type:          "Conformance.Record",
		ContentType:   jsonContentType,
		Body:          jsonString(token),
		Expiration:    strconv.FormatInt(expiredTTL.Milliseconds(), 10),
	})
	if err == nil {
		ctx, cancel := contextWithTimeout(k.timeout)
		var acked bool
		acked, err = dc.WaitContext(ctx)
		cancel()
		if err == nil && !acked {
			err = errors.New("the broker refused it")
		}
	}
	if err != nil {
		k.private.forget(id)
		return "", nil, 0, fmt.Errorf("publishing the request that should expire: %w", err)
	}
	q, err := ch.QueueDeclarePassive(k.queue, false, false, false, false, nil)
	if err != nil {
		k.private.forget(id)
		return "", nil, 0, fmt.Errorf("asking the broker about queue %q: %w", k.queue, err)
	}
	if time.Since(sent) >= expiredTTL {
		return id, w, -1, nil
	}
	return id, w, q.Messages, nil
}

// The out-of-order check: sleeps of decreasing length, then quick calls.
const (
	maxOutOfOrderSleeps = 5
	outOfOrderStep      = 150 * time.Millisecond
	outOfOrderAdds      = 20
)

// checkOutOfOrder: with a prefetch of 1 the server runs one request at a
// time, and only the matching of replies to requests is checked.
func checkOutOfOrder(k *checker) error {
	n := min(k.prefetch, maxOutOfOrderSleeps)
	type call struct {
		id   string
		w    <-chan reply
		want int
	}
	var calls []call
	for i := range n {
		ms := int((time.Duration(n-i) * outOfOrderStep).Milliseconds())
		id, w, err := k.private.send(request{method: "Conformance.Sleep", contentType: jsonContentType, body: []byte(strconv.Itoa(ms))}, k.timeout)
		if err != nil {
			return err
		}
		calls = append(calls, call{id, w, ms})
	}
	for i := range outOfOrderAdds {
		id, w, err := k.private.send(request{method: "Conformance.Add", contentType: jsonContentType, body: fmt.Appendf(nil, `{"A":%d,"B":%d}`, i, 1000)}, k.timeout)
		if err != nil {
			return err
		}
		calls = append(calls, call{id, w, i + 1000})
	}
	replies := make([]reply, len(calls))
	var firstErr error
	deadline := time.Now().Add(k.timeout + time.Duration(n)*outOfOrderStep)
	for i, c := range calls {
		r, err := k.private.await(c.id, c.w, time.Until(deadline))
		if err == nil {
			err = wantValue(r, c.want)
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("call %d of %d: %w", i+1, len(calls), err)
		}
		replies[i] = r
	}
	if firstErr != nil || n < 2 {
		return firstErr
	}
	longest := replies[0].at
	if !replies[n-1].at.Before(longest) {
		return fmt.Errorf("the reply to the shortest Sleep (%v, sent last) came %v after the reply to the longest (%v, sent first): "+
			"the server answers in the order requests came", outOfOrderStep, replies[n-1].at.Sub(longest).Round(time.Millisecond), time.Duration(n)*outOfOrderStep)
	}
	for i, r := range replies[n:] {
		if !r.at.Before(longest) {
			return fmt.Errorf("the reply to Add %d came %v after the reply to a Sleep of %v sent before it",
				i+1, r.at.Sub(longest).Round(time.Millisecond), time.Duration(n)*outOfOrderStep)
		}
	}
	return nil
}
