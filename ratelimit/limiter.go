// Package ratelimit decides, per key, whether a request may pass.
//
// Every store implements the generic cell rate algorithm (GCRA), the
// leaky-bucket variant that keeps a single number per key: the theoretical
// arrival time (TAT) of the next request at the steady rate. A key may run
// ahead of that schedule by at most Burst requests, so a fresh key can make
// Burst requests at once and then one every 1/Rate seconds. Compared with a
// token bucket this needs no refill arithmetic and no second field, which is
// what lets the Redis store decide in one small atomic script.
//
// Time is always a parameter (Allow takes now), so tests drive a fake clock
// and never sleep. The package imports nothing else of this module; the HTTP
// middleware that applies a Limiter lives elsewhere.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// Limiter decides whether one request for key, arriving at now, may pass.
// Implementations are safe for concurrent use.
type Limiter interface {
	Allow(ctx context.Context, key string, now time.Time) Decision
}

// Decision is the outcome of one Allow call. Its zero value denies with no
// advice about when to retry.
type Decision struct {
	// Allowed reports whether the request may pass.
	Allowed bool
	// Limit is the burst: how many requests a rested key can make at once.
	Limit int
	// Remaining is how many more requests the key could make right now.
	Remaining int
	// Reset is the time until the key is fully rested again (Remaining
	// back to Limit). It is zero for a key with no recorded usage.
	Reset time.Duration
	// RetryAfter is the time until the next request would be allowed. It is
	// set only when Allowed is false.
	RetryAfter time.Duration
}

// Canonical header names. "RateLimit-Limit" is not in Go's canonical form,
// so Header.Set would canonicalize, and allocate, on every call; writing the
// canonical spelling straight into the map avoids that. Header names are
// case-insensitive on the wire (RFC 9110 section 5.1).
const (
	headerLimit      = "Ratelimit-Limit"
	headerRemaining  = "Ratelimit-Remaining"
	headerReset      = "Ratelimit-Reset"
	headerRetryAfter = "Retry-After"
)

// SetHeaders writes RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset
// (whole seconds, rounded up) to h, and Retry-After (whole seconds, rounded
// up, at least 1; RFC 9110 section 10.2.3) when the request was denied.
//
// It allocates once for the value slices, once more for each number of 100
// or above (strconv keeps smaller ones as constants), plus whatever h needs
// to grow.
func (d Decision) SetHeaders(h http.Header) {
	n := 3
	if !d.Allowed {
		n = 4
	}
	// One backing array for all values; each header gets a capped
	// one-element window so an Add by someone else cannot overwrite a sibling.
	vals := make([]string, n)
	vals[0] = strconv.Itoa(d.Limit)
	vals[1] = strconv.Itoa(max(d.Remaining, 0))
	vals[2] = strconv.FormatInt(ceilSeconds(d.Reset), 10)
	h[headerLimit] = vals[0:1:1]
	h[headerRemaining] = vals[1:2:2]
	h[headerReset] = vals[2:3:3]
	if !d.Allowed {
		vals[3] = strconv.FormatInt(max(ceilSeconds(d.RetryAfter), 1), 10)
		h[headerRetryAfter] = vals[3:4:4]
	}
}

// ceilSeconds rounds d up to whole seconds; negative durations count as 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// ErrInvalidLimit is returned by the constructors for a rate or burst that
// cannot describe a limit.
var ErrInvalidLimit = errors.New("ratelimit: invalid limit")

// maxSpan bounds Burst/Rate so that TAT arithmetic in nanoseconds can never
// overflow int64 (which holds about 292 years).
const maxSpan = 100 * 365 * 24 * time.Hour

// gcra holds the constants of the algorithm. The zero value is not usable.
type gcra struct {
	interval int64 // T = 1/rate, in ns: the spacing of requests at the steady rate
	limit    int64 // burst*T, in ns: how far past now the TAT may run
	burst    int
}

// newGCRA validates rate and burst and rounds the interval to a whole
// multiple of unit (the resolution of the store's clock).
func newGCRA(rate float64, burst int, unit time.Duration) (gcra, error) {
	if math.IsNaN(rate) || math.IsInf(rate, 0) || rate <= 0 {
		return gcra{}, fmt.Errorf("%w: rate %v must be a positive number", ErrInvalidLimit, rate)
	}
	if burst < 1 {
		return gcra{}, fmt.Errorf("%w: burst %d must be at least 1", ErrInvalidLimit, burst)
	}
	units := math.Round(float64(time.Second) / rate / float64(unit))
	if units < 1 {
		return gcra{}, fmt.Errorf("%w: rate %v is above the store's resolution of one request per %v", ErrInvalidLimit, rate, unit)
	}
	interval := units * float64(unit)
	if interval*float64(burst) > float64(maxSpan) {
		return gcra{}, fmt.Errorf("%w: burst %d at rate %v spans more than %v", ErrInvalidLimit, burst, rate, maxSpan)
	}
	return gcra{interval: int64(interval), limit: int64(interval) * int64(burst), burst: burst}, nil
}

// decide applies one request at now to a key whose TAT is tat (both in ns on
// the same clock; pass now, or any earlier time, for a key with no TAT). It
// returns whether the request passes, the offset of the resulting TAT from
// now, and the TAT to store (unchanged when denied).
func (g gcra) decide(tat, now int64) (allowed bool, offset, newTAT int64) {
	if tat < now {
		tat = now // a rested key carries no credit beyond its burst
	}
	next := tat + g.interval
	if next-now > g.limit {
		return false, tat - now, tat
	}
	return true, next - now, next
}

// decision turns the outcome of decide (possibly computed by another store)
// into a Decision.
func (g gcra) decision(allowed bool, offset int64) Decision {
	d := Decision{Allowed: allowed, Limit: g.burst, Reset: time.Duration(offset)}
	if allowed {
		d.Remaining = int((g.limit - offset) / g.interval)
	} else {
		// The next request passes once next-now <= limit, i.e. after
		// offset+interval-limit; positive because decide denied it.
		d.RetryAfter = time.Duration(offset + g.interval - g.limit)
	}
	return d
}
