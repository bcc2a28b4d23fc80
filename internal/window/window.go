// Package window counts two quantities over a sliding time window, lock
// free: requests and retries for the retry budget, requests and failures
// for the circuit breaker.
package window

import (
	"sync/atomic"
	"time"
)

// slots is how many buckets a window is cut into; the window slides by one
// bucket at a time.
const slots = 10

// Counter sums pairs of counts over the last Span. Its zero value is not
// usable; use New.
type Counter struct {
	width   int64 // nanoseconds per bucket
	buckets [slots]bucket
}

type bucket struct {
	epoch atomic.Int64
	a, b  atomic.Int64
}

// New returns a counter over a window of span.
func New(span time.Duration) *Counter {
	return &Counter{width: max(int64(span)/slots, 1)}
}

func (c *Counter) bucket(now time.Time) *bucket {
	epoch := now.UnixNano() / c.width
	k := &c.buckets[epoch%slots]
	if old := k.epoch.Load(); old != epoch && k.epoch.CompareAndSwap(old, epoch) {
		// First use of this slot in this epoch: forget what it held one
		// window ago. A racing Add may land before the reset and be lost,
		// which errs by one count at most.
		k.a.Store(0)
		k.b.Store(0)
	}
	return k
}

// Add adds a and b to the current bucket.
func (c *Counter) Add(now time.Time, a, b int64) {
	k := c.bucket(now)
	if a != 0 {
		k.a.Add(a)
	}
	if b != 0 {
		k.b.Add(b)
	}
}

// Sum returns the totals over the window ending at now.
func (c *Counter) Sum(now time.Time) (a, b int64) {
	epoch := now.UnixNano() / c.width
	for i := range c.buckets {
		k := &c.buckets[i]
		if e := k.epoch.Load(); e > epoch-slots && e <= epoch {
			a += k.a.Load()
			b += k.b.Load()
		}
	}
	return a, b
}

// Reset forgets every count.
func (c *Counter) Reset() {
	for i := range c.buckets {
		c.buckets[i].epoch.Store(0)
		c.buckets[i].a.Store(0)
		c.buckets[i].b.Store(0)
	}
}
