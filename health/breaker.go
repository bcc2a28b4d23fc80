package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

// BreakerConfig configures a circuit breaker per server.
type BreakerConfig struct {
	// ConsecutiveFailures opens a circuit after this many failures in a row.
	ConsecutiveFailures int
	// FailureRatio opens a circuit when this share of the requests in
	// Window failed, once there were at least MinRequests; 0 turns the rule
	// off.
	FailureRatio float64
	Window       time.Duration
	MinRequests  int
	// OpenTime is how long an open circuit refuses traffic before it goes
	// half-open.
	OpenTime time.Duration
}

// Breaker is the circuit breaker of one pool's servers. Where passive
// ejection reacts to connection failures alone, the breaker counts every
// failed exchange (errors and 5xx answers), and after its open time lets a
// few probe requests through (half-open) instead of readmitting blindly:
// one success closes the circuit, one failure opens it again.
//
// A Breaker holds only its policy. The counts, the circuit and its
// half-open timer belong to each server's State, which outlives a reload;
// so an outcome that finishes on the breaker of a replaced runtime counts
// where the current breaker's do, and a circuit it opens goes half-open on
// time. A Breaker needs no closing.
type Breaker struct {
	// OnTransition, if set, is called after every change of a circuit.
	OnTransition func(s *upstream.Server, c upstream.Circuit, reason string)

	pool *upstream.Pool
	cfg  BreakerConfig
	log  *slog.Logger
}

// NewBreaker returns the breaker of pool. Circuits that are open get their
// half-open timer armed again here, with this breaker's open time.
func NewBreaker(pool *upstream.Pool, cfg BreakerConfig, log *slog.Logger) *Breaker {
	b := &Breaker{pool: pool, cfg: cfg, log: orDiscard(log)}
	now := time.Now()
	for _, s := range pool.Servers {
		if s.Circuit() == upstream.CircuitOpen {
			st, _ := s.CircuitStatus()
			b.schedule(s, max(st.Since.Add(cfg.OpenTime).Sub(now), 0))
		}
	}
	return b
}

// Observe implements forward.Observer: every attempt on a server counts.
func (b *Breaker) Observe(s *upstream.Server, status int, err error, _ time.Duration) {
	if errors.Is(err, context.Canceled) || localFault(err) {
		return // the client left, or the proxy ran short: not the server
	}
	failed := err != nil || status >= 500
	b.Report(s, failed, time.Now())
}

// Report records one outcome on s at now.
func (b *Breaker) Report(s *upstream.Server, failed bool, now time.Time) {
	circuit := s.Circuit()
	n, reqs, fails := s.CircuitOutcome(now, b.cfg.Window, failed, circuit == upstream.CircuitClosed)
	switch circuit {
	case upstream.CircuitHalfOpen:
		if failed {
			b.open(s, "probe failed in half-open state", now)
		} else if s.SetCircuit(upstream.CircuitHalfOpen, upstream.CircuitClosed, "probe succeeded", now) {
			b.transition(s, upstream.CircuitClosed, "probe succeeded")
		}
		return
	case upstream.CircuitOpen:
		return
	}
	if !failed {
		return
	}
	if b.cfg.ConsecutiveFailures > 0 && n >= int64(b.cfg.ConsecutiveFailures) {
		b.open(s, fmt.Sprintf("%d consecutive failures", n), now)
		return
	}
	if b.cfg.FailureRatio > 0 && reqs >= int64(b.cfg.MinRequests) && float64(fails) >= b.cfg.FailureRatio*float64(reqs) {
		b.open(s, fmt.Sprintf("%d of %d requests failed in %s", fails, reqs, b.cfg.Window), now)
	}
}

func (b *Breaker) open(s *upstream.Server, reason string, now time.Time) {
	from := s.Circuit()
	if from == upstream.CircuitOpen || !s.SetCircuit(from, upstream.CircuitOpen, reason, now) {
		return
	}
	b.transition(s, upstream.CircuitOpen, reason)
	b.schedule(s, b.cfg.OpenTime)
}

// schedule arms the state's half-open timer to fire after d.
func (b *Breaker) schedule(s *upstream.Server, d time.Duration) {
	s.Schedule(upstream.HalfOpenTimer, d, func() { b.halfOpen(s) })
}

func (b *Breaker) halfOpen(s *upstream.Server) {
	if s.SetCircuit(upstream.CircuitOpen, upstream.CircuitHalfOpen, "open time over: probing", time.Now()) {
		b.transition(s, upstream.CircuitHalfOpen, "open time over: probing")
	}
}

func (b *Breaker) transition(s *upstream.Server, c upstream.Circuit, reason string) {
	b.log.Warn("circuit breaker", "upstream", b.pool.Name, "server", s.Name, "state", c.String(), "reason", reason)
	if b.OnTransition != nil {
		b.OnTransition(s, c, reason)
	}
}
