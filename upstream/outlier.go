package upstream

import "time"

// This file holds the state passive health (outlier ejection) keeps on a
// server. The policy, thresholds and timers, lives in package health; the
// counters live here so they survive a reload with the rest of the state.

// ReportFailure counts a failed request and returns the number of
// consecutive failures so far.
func (s *State) ReportFailure() int64 {
	s.failures.Add(1)
	return s.consecutive.Add(1)
}

// ReportSuccess ends a run of failures. It writes only when there is a run
// to end, so the common case does not bounce the cache line between cores.
func (s *State) ReportSuccess() {
	if s.consecutive.Load() != 0 {
		s.consecutive.Store(0)
	}
}

// ConsecutiveFailures is the length of the current run of failures.
func (s *State) ConsecutiveFailures() int64 { return s.consecutive.Load() }

// Failures is the number of failed requests ever reported.
func (s *State) Failures() uint64 { return s.failures.Load() }

// Ejections is the number of times passive health has ejected the server.
func (s *State) Ejections() uint64 { return s.ejections.Load() }

// EjectedUntil is the end of the current or last ejection, zero if none is
// recorded.
func (s *State) EjectedUntil() time.Time {
	u := s.ejectedUntil.Load()
	if u == 0 {
		return time.Time{}
	}
	return time.Unix(0, u)
}

// EjectAt ejects the server from now until until, recording reason. It
// reports whether this is a transition: false when the server is already
// ejected at now. The failure run is reset so a readmitted server needs a
// fresh run to be ejected again.
func (s *State) EjectAt(now, until time.Time, reason string) bool {
	for {
		old := s.ejectedUntil.Load()
		if old != 0 && now.UnixNano() < old {
			return false
		}
		if s.ejectedUntil.CompareAndSwap(old, until.UnixNano()) {
			break
		}
	}
	s.ejections.Add(1)
	s.consecutive.Store(0)
	s.ejectStatus.Store(&Status{Healthy: false, Reason: reason, Since: now})
	s.changed(now)
	return true
}

// EjectBackoff is passive health's memory of past ejections: how many
// times the ejection time has doubled, and when the last ejection ended
// (zero if none).
func (s *State) EjectBackoff() (doublings int, lastEnd time.Time) {
	if e := s.ejectEnd.Load(); e != 0 {
		lastEnd = time.Unix(0, e)
	}
	return int(s.ejectDoublings.Load()), lastEnd
}

// SetEjectBackoff records what EjectBackoff returns. Passive health calls
// it while it serialises ejections.
func (s *State) SetEjectBackoff(doublings int, lastEnd time.Time) {
	s.ejectDoublings.Store(int64(doublings))
	s.ejectEnd.Store(lastEnd.UnixNano())
}

// ReadmitAt ends an ejection at now; it reports whether the server was
// ejected. The server then ramps up under slow start, and failures reported
// by requests still in flight during the ejection are forgotten.
func (s *State) ReadmitAt(now time.Time) bool {
	if s.ejectedUntil.Swap(0) == 0 {
		return false
	}
	s.consecutive.Store(0)
	s.ejectStatus.Store(&Status{Healthy: true, Reason: "readmitted after ejection", Since: now})
	s.rampFrom.Store(now.UnixNano())
	s.changed(now)
	return true
}

// Check is the outcome of one active health check.
type Check struct {
	// At is when the check started.
	At time.Time `json:"at"`
	// OK reports whether the check passed.
	OK bool `json:"ok"`
	// Result says what the check got: "status 200", "connect: connection
	// refused", ...
	Result string `json:"result"`
	// Latency is how long the check took.
	Latency time.Duration `json:"latency"`
	// Local, when set, names the proxy's own resource that ran out
	// ("emfile", ...) so the check could not be made: it says nothing
	// about the server, and the checker does not judge it.
	Local string `json:"local,omitempty"`
}

// RecordCheck stores the outcome of an active health check and returns how
// many checks in a row, this one included, had the same outcome: the rise
// when it passed, the fall when it failed. The run belongs to the state, so
// it carries across a reload.
func (s *State) RecordCheck(c Check) (run int) {
	s.lastCheck.Store(&c)
	for {
		old := s.checkRun.Load()
		next := int64(1)
		switch {
		case c.OK && old > 0:
			next = old + 1
		case !c.OK && old < 0:
			next = old - 1
		case !c.OK:
			next = -1
		}
		if s.checkRun.CompareAndSwap(old, next) {
			return int(max(next, -next))
		}
	}
}

// CheckRun is the current run of like active check outcomes: n > 0 passes
// in a row, n < 0 failures, 0 before the first check.
func (s *State) CheckRun() int { return int(s.checkRun.Load()) }

// Proven reports whether active checks have proven the server either way:
// it passed a check once, or failed a full run of them. The checker judges
// an unproven server on each check alone.
func (s *State) Proven() bool { return s.proven.Load() }

// Prove records that active checks have proven the server; see Proven.
func (s *State) Prove() {
	if !s.proven.Load() {
		s.proven.Store(true)
	}
}

// EjectedSince is when the current ejection began; ok is false when the
// server is not ejected at now.
func (s *State) EjectedSince(now time.Time) (since time.Time, ok bool) {
	if !s.Ejected(now) {
		return time.Time{}, false
	}
	if e := s.ejectStatus.Load(); e != nil {
		return e.Since, true
	}
	return time.Time{}, true
}

// LastCheck returns the last active check's outcome; ok is false when the
// server was never checked.
func (s *State) LastCheck() (c Check, ok bool) {
	p := s.lastCheck.Load()
	if p == nil {
		return Check{}, false
	}
	return *p, true
}
