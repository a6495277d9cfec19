package conform

// The checks of how a server takes requests from its queue
// (docs/PROTOCOL.md §6): a request without a reply_to still runs once, an
// expired request never runs, and requests in flight at once are answered
// as each finishes.

import (
	"errors"
	"fmt"
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
	props := []rawProp{{propType, "Conformance.Record"}, {propContentType, jsonContentType}, {propReplyTo, ""}, {propCorrelationID, id}}
	if err := rawPublish(k.url, k.queue, props, jsonString(token), k.timeout); err != nil {
		k.private.forget(id)
		return fmt.Errorf("publishing with an empty reply_to: %w", err)
	}
	return k.ranOnceWithoutReply(token, id, w)
}

// ranOnceWithoutReply waits until Record ran for token, and checks that it
// ran once and that no reply to its request id came.
func (k *checker) ranOnceWithoutReply(token, id string, w <-chan reply) error {
	defer k.private.forget(id)
	n, err := k.countUntil(token, func(n int) bool { return n > 0 })
	switch {
	case err != nil:
		return err
	case n == 0:
		return fmt.Errorf("the Record request did not run within %v (Count says 0)", k.timeout)
	case n > 1:
		return fmt.Errorf("the Record request ran %d times; want once", n)
	}
	select {
	case r := <-w:
		return fmt.Errorf("a reply came (to %q, body %.40q); want none", r.RoutingKey, r.Body)
	default:
		return nil
	}
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
	if k.prefetch < 1 {
		return errors.New("needs -prefetch of 1 or more")
	}
	var sleeps []<-chan reply
	var ids []string
	defer func() {
		for _, id := range ids {
			k.private.forget(id)
		}
	}()
	for range k.prefetch {
		id, w, err := k.private.send(request{method: "Conformance.Sleep", contentType: jsonContentType, body: []byte(strconv.FormatInt(expiredSleep.Milliseconds(), 10))}, k.timeout)
		if err != nil {
			return err
		}
		ids, sleeps = append(ids, id), append(sleeps, w)
	}
	token := k.token + "-expired"
	probeID, probe, waiting, err := k.publishProbe(token)
	if err != nil {
		return err
	}
	defer k.private.forget(probeID)
	deadline := time.Now().Add(2*expiredSleep + k.timeout)
	for i, w := range sleeps {
		if _, err := k.private.await(ids[i], w, time.Until(deadline)); err != nil {
			return fmt.Errorf("the Sleep call %d of %d: %w", i+1, len(sleeps), err)
		}
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
			return fmt.Errorf("the request with expiration %v ran (Count says %d) after waiting in the queue for %v", expiredTTL, n, expiredSleep)
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

func checkOutOfOrder(k *checker) error {
	n := min(k.prefetch, maxOutOfOrderSleeps)
	if n < 2 {
		return fmt.Errorf("needs a server that runs 2 or more requests at once (-prefetch %d)", k.prefetch)
	}
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
	if firstErr != nil {
		return firstErr
	}
	longest := replies[0].at
	if !replies[n-1].at.Before(longest) {
		return fmt.Errorf("the reply to the shortest Sleep (%v, sent last) came after the reply to the longest (%v, sent first): "+
			"the server answers in the order requests came", outOfOrderStep, time.Duration(n)*outOfOrderStep)
	}
	for i, r := range replies[n:] {
		if !r.at.Before(longest) {
			return fmt.Errorf("the reply to Add %d came after the reply to a Sleep of %v sent before it", i+1, time.Duration(n)*outOfOrderStep)
		}
	}
	return nil
}
