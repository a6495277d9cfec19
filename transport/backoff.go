package transport

import (
	"math/rand/v2"
	"time"
)

// Backoff spaces reconnect attempts: the delay doubles from Min after each
// failed attempt up to Max, and each delay is drawn at random from its upper
// half so that many clients restarted together do not reconnect in step.
type Backoff struct {
	Min, Max time.Duration
}

// delay returns the wait before the given attempt, counted from 0.
func (b Backoff) delay(attempt int) time.Duration {
	d := b.Min
	for i := 0; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// stableSession is how long a session must last for the next reconnect to
// start again from the shortest delay. A session that ends sooner (a broker
// that refuses every session, say for a missing permission) keeps the delay
// growing instead of reconnecting in a tight loop.
const stableSession = 5 * time.Second
