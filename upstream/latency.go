package upstream

import (
	"math"
	"time"
)

// LatencyDecay is the time constant of the latency EWMA: a sample's weight
// halves roughly every 0.7×LatencyDecay. It is time-based rather than
// per-sample so a busy server and a quiet one forget at the same pace.
// Finagle and linkerd use the same 10s default for their peak EWMA.
const LatencyDecay = 10 * time.Second

// ObserveLatency records the response time of a request to the server.
func (s *State) ObserveLatency(d time.Duration) { s.ObserveLatencyAt(d, time.Now()) }

// ObserveLatencyAt records a response time seen at now.
//
// The average is a peak EWMA: a sample above the current value replaces it
// at once, so a server that turns slow is avoided on its first slow answer,
// while a sample below it pulls it down with weight 1-exp(-Δt/LatencyDecay),
// Δt being the time since the previous sample. After a quiet spell the old
// value therefore counts for little and the average follows the new
// samples: a server that was slow and recovered looks fast again.
func (s *State) ObserveLatencyAt(d time.Duration, now time.Time) {
	rtt := float64(max(d, 0))
	t := now.UnixNano()
	for {
		old := s.ewma.Load()
		cost := math.Float64frombits(old)
		next := rtt
		if rtt <= cost {
			w := math.Exp(-float64(max(t-s.ewmaStamp.Load(), 0)) / float64(LatencyDecay))
			next = cost*w + rtt*(1-w)
		}
		if s.ewma.CompareAndSwap(old, math.Float64bits(next)) {
			break
		}
	}
	// The stamp only moves forward, so racing observers cannot make a
	// later sample look older. Value and stamp are two words, so a reader
	// may pair a new value with an old stamp for an instant; that skews one
	// weight slightly and is not worth a lock on the request path.
	for {
		old := s.ewmaStamp.Load()
		if old >= t || s.ewmaStamp.CompareAndSwap(old, t) {
			return
		}
	}
}

// Latency is the response-time EWMA as of its last sample, 0 before the
// first. It is what the admin API shows.
func (s *State) Latency() time.Duration {
	return time.Duration(math.Float64frombits(s.ewma.Load()))
}

// LatencyCost is the EWMA in nanoseconds decayed toward zero by the time
// since its last sample. least_latency ranks servers by it: a server that
// gets no traffic because it was slow looks cheaper and cheaper until it is
// tried again, so no server starves for want of fresh samples. It is 0
// before the first sample.
func (s *State) LatencyCost(now time.Time) float64 {
	cost := math.Float64frombits(s.ewma.Load())
	if cost == 0 {
		return 0
	}
	idle := now.UnixNano() - s.ewmaStamp.Load()
	if idle <= 0 {
		return cost
	}
	return cost * math.Exp(-float64(idle)/float64(LatencyDecay))
}
