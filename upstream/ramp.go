package upstream

import "time"

// MinRamp is the share of its weight a server gets the moment it returns
// to the pool under slow start; it then grows linearly to 1 over SlowStart.
// nginx and HAProxy also start above zero so the server sees some traffic
// (and fails fast if it is still broken) rather than none.
const MinRamp = 0.1

// Ramping reports whether the server may be in its slow-start ramp. It
// reads one atomic and no clock, so strategies call it on every pick and
// look at the time only for the rare ramping server.
func (s *Server) Ramping() bool {
	return s.SlowStart > 0 && s.rampFrom.Load() != 0
}

// Ramp is the share of its weight the server gets at now: 1 when it is not
// ramping, else from MinRamp up to 1 over SlowStart since it returned to
// the pool (became healthy, was readmitted after an ejection, or was
// undrained). A server healthy since start-up does not ramp: there is no
// warm traffic to protect it from.
func (s *Server) Ramp(now time.Time) float64 {
	if s.SlowStart <= 0 {
		return 1
	}
	from := s.rampFrom.Load()
	if from == 0 {
		return 1
	}
	elapsed := now.UnixNano() - from
	if elapsed >= int64(s.SlowStart) {
		// Over: clear it so Ramping is false and picks skip the clock.
		s.rampFrom.CompareAndSwap(from, 0)
		return 1
	}
	return MinRamp + (1-MinRamp)*float64(max(elapsed, 0))/float64(s.SlowStart)
}

// EffectiveWeight is Weight (at least 1) scaled by Ramp.
func (s *Server) EffectiveWeight(now time.Time) float64 {
	return float64(max(s.Weight, 1)) * s.Ramp(now)
}

// TryAcquire counts a request as started unless the server is at its
// connection cap, in one compare-and-swap, so concurrent requests can not
// together overshoot MaxConns the way Full-then-Acquire can.
func (s *Server) TryAcquire() bool {
	if s.MaxConns <= 0 {
		s.Acquire()
		return true
	}
	for {
		n := s.inFlight.Load()
		if n >= s.MaxConns {
			return false
		}
		if s.inFlight.CompareAndSwap(n, n+1) {
			s.requests.Add(1)
			return true
		}
	}
}

// StartRamp begins a slow-start ramp at now, as for a server returning to
// the pool: used for a server that joins a serving pool for the first
// time, such as one DNS discovery found.
func (s *State) StartRamp(now time.Time) { s.rampFrom.Store(now.UnixNano()) }
