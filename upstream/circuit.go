package upstream

import (
	"sync/atomic"
	"time"

	"github.com/tbsphathuynh/proxy/internal/window"
)

// Circuit is the state of a server's circuit breaker.
type Circuit int32

// Circuit states.
const (
	// CircuitClosed lets traffic through: the normal state.
	CircuitClosed Circuit = iota
	// CircuitOpen refuses traffic until its open time passes.
	CircuitOpen
	// CircuitHalfOpen lets a few probe requests through; their outcome
	// closes the circuit or opens it again.
	CircuitHalfOpen
)

func (c Circuit) String() string {
	switch c {
	case CircuitOpen:
		return "open"
	case CircuitHalfOpen:
		return "half_open"
	}
	return "closed"
}

// circuitState is kept in State so it outlives a reload, counts included:
// outcomes that finish on a replaced runtime's breaker add to the same run
// and window as the current breaker's.
type circuitState struct {
	state  atomic.Int32
	status atomic.Pointer[Status]
	// run is the breaker's count of failures in a row, apart from passive
	// health's (the two count different failures).
	run atomic.Int64
	win atomic.Pointer[spanCounter]
}

// spanCounter is a window counter with the span it was built for, so a
// reload that changes the span starts a new window.
type spanCounter struct {
	span time.Duration
	*window.Counter
}

// Circuit returns the circuit breaker's state.
func (s *State) Circuit() Circuit { return Circuit(s.circuit.state.Load()) }

// CircuitStatus says why and since when the circuit is in its state; ok is
// false when it never changed.
func (s *State) CircuitStatus() (st Status, ok bool) {
	p := s.circuit.status.Load()
	if p == nil {
		return Status{}, false
	}
	return *p, true
}

// SetCircuit moves the circuit from one state to another by
// compare-and-swap, reporting whether this call made the change, so only
// the caller that did logs and counts it.
func (s *State) SetCircuit(from, to Circuit, reason string, now time.Time) bool {
	if !s.circuit.state.CompareAndSwap(int32(from), int32(to)) {
		return false
	}
	s.circuit.status.Store(&Status{Healthy: to != CircuitOpen, Reason: reason, Since: now})
	switch to {
	case CircuitHalfOpen:
		s.circuit.run.Store(0)
	case CircuitClosed:
		s.circuit.run.Store(0)
		if w := s.circuit.win.Load(); w != nil {
			w.Reset()
		}
	}
	s.changed(now)
	return true
}

// CircuitOutcome counts one exchange for the circuit breaker at now, in a
// window of span, and returns the window's totals. The run of failures
// grows only when run is true (the breaker counts it while the circuit is
// closed); a success ends it. It takes no lock; a change of span starts a
// new window.
func (s *State) CircuitOutcome(now time.Time, span time.Duration, failed, run bool) (consecutive, requests, failures int64) {
	w := s.circuit.win.Load()
	for w == nil || w.span != span {
		next := &spanCounter{span: span, Counter: window.New(span)}
		if s.circuit.win.CompareAndSwap(w, next) {
			w = next
			break
		}
		w = s.circuit.win.Load()
	}
	var f int64
	if failed {
		f = 1
	}
	w.Add(now, 1, f)
	switch {
	case !failed:
		if s.circuit.run.Load() != 0 {
			s.circuit.run.Store(0)
		}
	case run:
		consecutive = s.circuit.run.Add(1)
	}
	if failed {
		requests, failures = w.Sum(now)
	}
	return consecutive, requests, failures
}
