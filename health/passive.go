package health

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

// PassiveConfig configures outlier ejection on live traffic. Zero fields
// take the defaults named on each.
type PassiveConfig struct {
	// Enabled turns ejection on. A disabled Passive still records latency
	// and failure counts (Observe) and still readmits servers that an
	// earlier runtime ejected, so a reload that turns ejection off does not
	// strand them.
	Enabled bool
	// ConsecutiveFailures is the run of failed attempts that ejects a
	// server; default 3.
	ConsecutiveFailures int
	// EjectionTime is how long the first ejection lasts; default 10s. Each
	// further ejection doubles it, up to MaxEjectionTime.
	EjectionTime time.Duration
	// MaxEjectionTime caps an ejection; default 60s or EjectionTime if
	// longer. A server that stays in the pool for MaxEjectionTime after an
	// ejection starts again from EjectionTime.
	MaxEjectionTime time.Duration
	// MaxEjectionPercent is the most of the pool's servers, rounded down,
	// that may be ejected at once; default 50. It keeps a fault that hits
	// every server, such as a bad deploy of the proxy's own network, from
	// emptying the pool. Below 100, the last usable server of the pool is
	// never ejected either.
	MaxEjectionPercent int
	// On5xx counts 5xx responses as failures in Observe, not only
	// connection failures.
	On5xx bool
}

func (c PassiveConfig) withDefaults() PassiveConfig {
	if c.ConsecutiveFailures <= 0 {
		c.ConsecutiveFailures = 3
	}
	if c.EjectionTime <= 0 {
		c.EjectionTime = 10 * time.Second
	}
	if c.MaxEjectionTime <= 0 {
		c.MaxEjectionTime = 60 * time.Second
	}
	c.MaxEjectionTime = max(c.MaxEjectionTime, c.EjectionTime)
	if c.MaxEjectionPercent <= 0 {
		c.MaxEjectionPercent = 50
	}
	c.MaxEjectionPercent = min(c.MaxEjectionPercent, 100)
	return c
}

// Passive ejects the servers of one pool that fail live traffic (outlier
// detection): the forwarder reports every attempt, and a run of
// ConsecutiveFailures takes the server out for an ejection time. A timer
// readmits it, so readmission needs neither traffic nor active checks.
//
// A Passive holds only its policy. The failure run, the backoff and the
// readmission timer belong to each server's State, which outlives a
// reload: an attempt that finishes on the Passive of a replaced runtime
// counts where the current one's do, and a server it ejects comes back on
// time. A Passive needs no closing.
type Passive struct {
	// OnTransition, if set, is called after each ejection and readmission.
	// Set it before the first Report.
	OnTransition Transition
	// Now is the clock; nil means time.Now. Report takes its time as a
	// parameter; Now serves the readmission timers.
	Now func() time.Time

	pool *upstream.Pool
	cfg  PassiveConfig
	log  *slog.Logger

	// mu serialises this Passive's ejections, so MaxEjectionPercent is
	// checked and applied atomically.
	mu sync.Mutex
}

// NewPassive returns passive health for pool. logger may be nil. Servers
// that are ejected get their readmission timer armed again here, so it is
// this Passive that logs it.
func NewPassive(pool *upstream.Pool, cfg PassiveConfig, logger *slog.Logger) *Passive {
	p := &Passive{
		pool: pool,
		cfg:  cfg.withDefaults(),
		log:  orDiscard(logger),
	}
	for _, s := range pool.Servers {
		if until := s.EjectedUntil(); !until.IsZero() {
			p.schedule(s, until)
		}
	}
	return p
}

func (p *Passive) now() time.Time {
	if p.Now == nil {
		return time.Now()
	}
	return p.Now()
}

// Report records the outcome of one attempt on s: failed is true for a
// connection failure, or a 5xx when those count. A success ends the run of
// failures and costs two atomic loads; no allocation, no lock.
func (p *Passive) Report(s *upstream.Server, failed bool, now time.Time) {
	if !failed {
		s.ReportSuccess()
		return
	}
	n := s.ReportFailure()
	if !p.cfg.Enabled || n < int64(p.cfg.ConsecutiveFailures) {
		return
	}
	p.eject(s, n, now)
}

func (p *Passive) eject(s *upstream.Server, failures int64, now time.Time) {
	p.mu.Lock()
	if s.Ejected(now) {
		p.mu.Unlock()
		return
	}
	ejected := 0
	for _, o := range p.pool.Servers {
		if o.Ejected(now) {
			ejected++
		}
	}
	skip := ""
	switch {
	case ejected+1 > len(p.pool.Servers)*p.cfg.MaxEjectionPercent/100:
		skip = "ejection skipped: max_ejection_percent reached"
	case p.cfg.MaxEjectionPercent < 100 && !p.othersUsable(s, now):
		// Servers that active checks took out, drained or whose circuit
		// is open count too: ejecting the last one left would turn the
		// 502s of one server into 503s for every request.
		skip = "ejection skipped: last usable server"
	}
	if skip != "" {
		// The server stays in; its failures keep counting, so it is
		// ejected as soon as another server comes back.
		p.mu.Unlock()
		p.log.LogAttrs(context.Background(), slog.LevelDebug, skip,
			slog.String("upstream", p.pool.Name), slog.String("server", s.Name))
		return
	}
	doublings, lastEnd := s.EjectBackoff()
	if !lastEnd.IsZero() && now.Sub(lastEnd) > p.cfg.MaxEjectionTime {
		doublings = 0 // it behaved for a long spell: forgive the past
	}
	d := p.cfg.EjectionTime
	for range doublings {
		if d >= p.cfg.MaxEjectionTime {
			break
		}
		d *= 2
	}
	d = min(d, p.cfg.MaxEjectionTime)
	until := now.Add(d)
	reason := "ejected: " + strconv.FormatInt(failures, 10) + " consecutive failures"
	if !s.EjectAt(now, until, reason) {
		p.mu.Unlock()
		return
	}
	if d < p.cfg.MaxEjectionTime {
		doublings++
	}
	s.SetEjectBackoff(doublings, until)
	p.schedule(s, until)
	p.mu.Unlock()

	p.log.LogAttrs(context.Background(), slog.LevelWarn, "server ejected",
		slog.String("upstream", p.pool.Name), slog.String("server", s.Name),
		slog.String("check", "passive"), slog.String("reason", reason), slog.Duration("for", d))
	if p.OnTransition != nil {
		p.OnTransition(s, false, reason)
	}
}

// othersUsable reports whether a server of the pool other than s may take
// requests at now.
func (p *Passive) othersUsable(s *upstream.Server, now time.Time) bool {
	for _, o := range p.pool.Servers {
		if o != s && o.Usable(now) {
			return true
		}
	}
	return false
}

// schedule arms the state's readmission timer to fire at until.
func (p *Passive) schedule(s *upstream.Server, until time.Time) {
	s.Schedule(upstream.ReadmitTimer, until.Sub(p.now()), func() { p.readmit(s) })
}

func (p *Passive) readmit(s *upstream.Server) {
	now := p.now()
	if s.Ejected(now) {
		// The clock says not yet (a fake clock in tests, or a shift):
		// try again when it says so.
		p.schedule(s, s.EjectedUntil())
		return
	}
	if !s.ReadmitAt(now) {
		return
	}
	const reason = "readmitted after ejection"
	p.log.LogAttrs(context.Background(), slog.LevelInfo, "server readmitted",
		slog.String("upstream", p.pool.Name), slog.String("server", s.Name),
		slog.String("check", "passive"), slog.String("reason", reason))
	if p.OnTransition != nil {
		p.OnTransition(s, true, reason)
	}
}
