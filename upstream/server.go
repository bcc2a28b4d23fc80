// Package upstream holds the live state of backend servers: whether they are
// healthy, how many requests they are serving, how fast they answer. State
// lives apart from configuration and is kept by address, so it outlives a
// config reload.
package upstream

import (
	"net/url"
	"sync/atomic"
	"time"
)

// Server is one configured backend: its settings from the config plus a
// pointer to its live State. A Server is immutable once built; everything
// that changes lives in State.
type Server struct {
	// Name labels the server in logs, metrics and the admin API.
	Name string
	// URL is where requests go: scheme and host (and an optional base path).
	URL *url.URL
	// Weight is the server's relative share of traffic (≥ 1).
	Weight int
	// Backup servers serve only when no primary server is usable.
	Backup bool
	// MaxConns caps concurrent requests to the server; 0 means no cap.
	MaxConns int64
	// HalfOpenRequests is how many requests a half-open circuit lets
	// through at once; 0 when the upstream has no circuit breaker.
	HalfOpenRequests int64
	// Source says who put the server in the pool: "config", "dns" or
	// "api", for the admin API.
	Source string
	// SlowStart is how long a server that returns to the pool takes to
	// ramp up to its full share.
	SlowStart time.Duration

	*State
}

// Full reports whether the server can take no more requests now: it is at
// its connection cap, or its circuit is half-open and its probe requests
// are all under way.
func (s *Server) Full() bool {
	n := s.InFlight()
	if s.MaxConns > 0 && n >= s.MaxConns {
		return true
	}
	return s.HalfOpenRequests > 0 && n >= s.HalfOpenRequests && s.Circuit() == CircuitHalfOpen
}

// State is the live, shared state of one server. All methods are safe for
// concurrent use and take no lock.
type State struct {
	key string

	inFlight atomic.Int64
	requests atomic.Uint64
	failures atomic.Uint64

	// down is set while active checks consider the server unhealthy.
	down atomic.Bool
	// ejectedUntil is the unix-nano time until which passive health keeps
	// the server out of the pool; 0 when not ejected.
	ejectedUntil atomic.Int64
	// drained servers take no new requests (set through the admin API).
	drained atomic.Bool

	// status describes the last transition, for the admin API.
	status atomic.Pointer[Status]

	// ewma is the peak EWMA of response time in nanoseconds (float64 bits)
	// and ewmaStamp the unix-nano time of its last sample; see latency.go.
	ewma      atomic.Uint64
	ewmaStamp atomic.Int64

	// consecutive counts failures on live traffic since the last success;
	// ejections counts passive ejections ever; ejectStatus says why the
	// last one happened or ended. See passive.go.
	consecutive atomic.Int64
	ejections   atomic.Uint64
	ejectStatus atomic.Pointer[Status]
	// ejectDoublings is how many times the ejection time has doubled, and
	// ejectEnd the unix-nano end of the last ejection; passive health's
	// backoff, kept here so a reload does not forgive a flapping server.
	ejectDoublings atomic.Int64
	ejectEnd       atomic.Int64

	// rampFrom is the unix-nano time the server last returned to the pool,
	// for slow start; 0 once the ramp is over or when there never was one.
	rampFrom atomic.Int64

	// lastCheck is the last active health check's outcome; nil until the
	// first check, which is how the checker knows a server was never
	// checked.
	lastCheck atomic.Pointer[Check]

	// checkRun is the run of like active check outcomes: n > 0 passes in
	// a row, n < 0 failures. It lives here, not in the checker, so a
	// reload does not restart a server's rise or fall from zero.
	checkRun atomic.Int64
	// proven is set once active checks have had their say on the server:
	// its first passing check, or a full unhealthy_threshold of failures.
	// Until then each verdict counts in full; see health.Checker.
	proven atomic.Bool

	circuit circuitState

	// life holds the state's timers and the pools to refresh; see
	// timers.go.
	life life
}

// Status says why a server is in its current health state.
type Status struct {
	Healthy bool
	Reason  string
	Since   time.Time
}

func newState(key string) *State {
	s := &State{key: key}
	s.status.Store(&Status{Healthy: true, Reason: "initial", Since: time.Now()})
	return s
}

// Key is the identity the state is kept under across reloads.
func (s *State) Key() string { return s.key }

// InFlight is the number of requests the server is serving now.
func (s *State) InFlight() int64 { return s.inFlight.Load() }

// Acquire counts a request as started on the server.
func (s *State) Acquire() {
	s.inFlight.Add(1)
	s.requests.Add(1)
}

// Release counts a request as finished.
func (s *State) Release() { s.inFlight.Add(-1) }

// Requests is the number of requests sent to the server since it was first
// configured.
func (s *State) Requests() uint64 { return s.requests.Load() }

// Healthy reports whether active checks consider the server healthy.
func (s *State) Healthy() bool { return !s.down.Load() }

// SetHealthy records the result of active checking. It reports whether the
// state changed, so callers log and count only real transitions.
func (s *State) SetHealthy(healthy bool, reason string, now time.Time) bool {
	if !s.down.CompareAndSwap(healthy, !healthy) {
		return false
	}
	s.status.Store(&Status{Healthy: healthy, Reason: reason, Since: now})
	if healthy {
		s.rampFrom.Store(now.UnixNano())
	}
	s.changed(now)
	return true
}

// Status returns the last recorded transition.
func (s *State) Status() Status { return *s.status.Load() }

// Eject keeps the server out of the pool until the given time (passive
// health). It reports whether the server was not already ejected.
func (s *State) Eject(until time.Time) bool {
	for {
		old := s.ejectedUntil.Load()
		if s.ejectedUntil.CompareAndSwap(old, until.UnixNano()) {
			now := time.Now()
			if old == 0 {
				s.ejectStatus.Store(&Status{Reason: "ejected", Since: now})
			}
			s.changed(now)
			return old == 0
		}
	}
}

// Readmit ends an ejection; it reports whether the server was ejected.
func (s *State) Readmit() bool { return s.ReadmitAt(time.Now()) }

// Ejected reports whether passive health keeps the server out at now.
func (s *State) Ejected(now time.Time) bool {
	u := s.ejectedUntil.Load()
	return u != 0 && now.UnixNano() < u
}

// SetDrained takes the server out of rotation (true) or back in (false),
// reporting whether that changed anything. An undrained server ramps up
// under slow start like any other returning server.
func (s *State) SetDrained(d bool) bool {
	if !s.drained.CompareAndSwap(!d, d) {
		return false
	}
	now := time.Now()
	if !d {
		s.rampFrom.Store(now.UnixNano())
	}
	s.changed(now)
	return true
}

// Drained reports whether an operator took the server out of rotation.
func (s *State) Drained() bool { return s.drained.Load() }

// Usable reports whether the server may take new requests at now.
func (s *State) Usable(now time.Time) bool {
	return !s.down.Load() && !s.drained.Load() && !s.Ejected(now) && s.Circuit() != CircuitOpen
}
