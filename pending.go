package amqprpc

import "time"

// pendingCalls holds the client's calls by sequence number and, for those
// with a deadline, in deadline order, so one timer serves them all. It is not
// safe for concurrent use.
type pendingCalls struct {
	bySeq      map[uint64]*call
	head, tail *call // earliest and latest deadline
}

func (p *pendingCalls) len() int { return len(p.bySeq) }

func (p *pendingCalls) get(seq uint64) *call { return p.bySeq[seq] }

// add registers c. Calls made with one timeout arrive in deadline order, so
// an insert almost always appends.
func (p *pendingCalls) add(c *call) {
	if p.bySeq == nil {
		p.bySeq = make(map[uint64]*call)
	}
	p.bySeq[c.seq] = c
	if c.deadline.IsZero() {
		return
	}
	at := p.tail
	for at != nil && at.deadline.After(c.deadline) {
		at = at.prev
	}
	c.prev = at
	if at == nil {
		c.next = p.head
		p.head = c
	} else {
		c.next = at.next
		at.next = c
	}
	if c.next == nil {
		p.tail = c
	} else {
		c.next.prev = c
	}
}

// remove unregisters and returns the call with seq, or nil.
func (p *pendingCalls) remove(seq uint64) *call {
	c := p.bySeq[seq]
	if c == nil {
		return nil
	}
	delete(p.bySeq, seq)
	if c.deadline.IsZero() {
		return c
	}
	if c.prev == nil {
		p.head = c.next
	} else {
		c.prev.next = c.next
	}
	if c.next == nil {
		p.tail = c.prev
	} else {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
	return c
}

// popExpired removes and returns the calls whose deadline is not after now.
func (p *pendingCalls) popExpired(now time.Time, dst []*call) []*call {
	for p.head != nil && !p.head.deadline.After(now) {
		dst = append(dst, p.remove(p.head.seq))
	}
	return dst
}

// nextDeadline returns the earliest deadline, or false when no call has one.
func (p *pendingCalls) nextDeadline() (time.Time, bool) {
	if p.head == nil {
		return time.Time{}, false
	}
	return p.head.deadline, true
}

// each calls f for every call, in no particular order; f must not add or
// remove calls.
func (p *pendingCalls) each(f func(*call)) {
	for _, c := range p.bySeq {
		f(c)
	}
}
