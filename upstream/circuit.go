package upstream

import (
	"sync/atomic"
	"time"
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

// circuitState is kept in State so it outlives a reload.
type circuitState struct {
	state  atomic.Int32
	status atomic.Pointer[Status]
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
	return true
}
