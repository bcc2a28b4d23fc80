package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tbsphathuynh/proxy/internal/window"
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
type Breaker struct {
	// OnTransition, if set, is called after every change of a circuit.
	OnTransition func(s *upstream.Server, c upstream.Circuit, reason string)

	pool  *upstream.Pool
	cfg   BreakerConfig
	log   *slog.Logger
	stats map[*upstream.State]*breakerStats // fixed at construction

	// mu guards timers and closed.
	mu     sync.Mutex
	timers map[*upstream.State]*time.Timer
	closed bool
}

type breakerStats struct {
	consecutive atomic.Int64
	w           *window.Counter // requests, failures
}

// NewBreaker returns the breaker of pool. Circuits kept open by an earlier
// runtime get a timer here, so they go half-open on time after a reload.
func NewBreaker(pool *upstream.Pool, cfg BreakerConfig, log *slog.Logger) *Breaker {
	b := &Breaker{pool: pool, cfg: cfg, log: log, stats: make(map[*upstream.State]*breakerStats), timers: make(map[*upstream.State]*time.Timer)}
	now := time.Now()
	for _, s := range pool.Servers {
		b.stats[s.State] = &breakerStats{w: window.New(cfg.Window)}
		if s.Circuit() == upstream.CircuitOpen {
			st, _ := s.CircuitStatus()
			b.schedule(s, max(st.Since.Add(cfg.OpenTime).Sub(now), 0))
		}
	}
	return b
}

// Observe implements forward.Observer: every attempt on a server counts.
func (b *Breaker) Observe(s *upstream.Server, status int, err error, _ time.Duration) {
	if errors.Is(err, context.Canceled) {
		return // the client left; says nothing about the server
	}
	failed := err != nil || status >= 500
	b.Report(s, failed, time.Now())
}

// Report records one outcome on s at now.
func (b *Breaker) Report(s *upstream.Server, failed bool, now time.Time) {
	st := b.stats[s.State]
	if st == nil {
		return
	}
	var f int64
	if failed {
		f = 1
	}
	st.w.Add(now, 1, f)
	switch s.Circuit() {
	case upstream.CircuitHalfOpen:
		if failed {
			b.open(s, "probe failed in half-open state", now)
		} else if s.SetCircuit(upstream.CircuitHalfOpen, upstream.CircuitClosed, "probe succeeded", now) {
			st.consecutive.Store(0)
			st.w.Reset()
			b.transition(s, upstream.CircuitClosed, "probe succeeded")
		}
		return
	case upstream.CircuitOpen:
		return
	}
	if !failed {
		st.consecutive.Store(0)
		return
	}
	n := st.consecutive.Add(1)
	if b.cfg.ConsecutiveFailures > 0 && n >= int64(b.cfg.ConsecutiveFailures) {
		b.open(s, fmt.Sprintf("%d consecutive failures", n), now)
		return
	}
	if b.cfg.FailureRatio > 0 {
		reqs, fails := st.w.Sum(now)
		if reqs >= int64(b.cfg.MinRequests) && float64(fails) >= b.cfg.FailureRatio*float64(reqs) {
			b.open(s, fmt.Sprintf("%d of %d requests failed in %s", fails, reqs, b.cfg.Window), now)
		}
	}
}

func (b *Breaker) open(s *upstream.Server, reason string, now time.Time) {
	from := s.Circuit()
	if from == upstream.CircuitOpen || !s.SetCircuit(from, upstream.CircuitOpen, reason, now) {
		return
	}
	b.pool.Refresh(now)
	b.transition(s, upstream.CircuitOpen, reason)
	b.schedule(s, b.cfg.OpenTime)
}

// schedule turns s half-open after d.
func (b *Breaker) schedule(s *upstream.Server, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if t := b.timers[s.State]; t != nil {
		t.Stop()
	}
	b.timers[s.State] = time.AfterFunc(d, func() { b.halfOpen(s) })
}

func (b *Breaker) halfOpen(s *upstream.Server) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return
	}
	now := time.Now()
	if s.SetCircuit(upstream.CircuitOpen, upstream.CircuitHalfOpen, "open time over: probing", now) {
		b.stats[s.State].consecutive.Store(0)
		b.pool.Refresh(now)
		b.transition(s, upstream.CircuitHalfOpen, "open time over: probing")
	}
}

func (b *Breaker) transition(s *upstream.Server, c upstream.Circuit, reason string) {
	b.log.Warn("circuit breaker", "upstream", b.pool.Name, "server", s.Name, "state", c.String(), "reason", reason)
	if b.OnTransition != nil {
		b.OnTransition(s, c, reason)
	}
}

// Close stops the breaker's timers. Circuit states stay in the servers'
// State for the next runtime.
func (b *Breaker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, t := range b.timers {
		t.Stop()
	}
}
