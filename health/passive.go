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
	// ConsecutiveFailures is the run of failed requests that ejects a
	// server; default 5.
	ConsecutiveFailures int
	// EjectionTime is how long the first ejection lasts; default 30s. Each
	// further ejection doubles it, up to MaxEjectionTime.
	EjectionTime time.Duration
	// MaxEjectionTime caps an ejection; default 300s or EjectionTime if
	// longer. A server that stays in the pool for MaxEjectionTime after an
	// ejection starts again from EjectionTime.
	MaxEjectionTime time.Duration
	// MaxEjectionPercent is the most of the pool's servers, rounded down,
	// that may be ejected at once; default 50. It keeps a fault that hits
	// every server, such as a bad deploy of the proxy's own network, from
	// emptying the pool.
	MaxEjectionPercent int
	// On5xx counts 5xx responses as failures in Observe, not only
	// connection errors.
	On5xx bool
}

func (c PassiveConfig) withDefaults() PassiveConfig {
	if c.ConsecutiveFailures <= 0 {
		c.ConsecutiveFailures = 5
	}
	if c.EjectionTime <= 0 {
		c.EjectionTime = 30 * time.Second
	}
	if c.MaxEjectionTime <= 0 {
		c.MaxEjectionTime = 300 * time.Second
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
// Close stops the timers.
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

	// mu serialises ejections, so MaxEjectionPercent is checked and
	// applied atomically, and guards the fields below.
	mu     sync.Mutex
	closed bool
	timers map[*upstream.State]*time.Timer
	// backoff holds, per server, how many times the ejection time has
	// doubled and when the last ejection ends.
	backoff map[*upstream.State]backoff
	// wg counts scheduled readmissions, so Close can wait for a timer
	// callback already running.
	wg sync.WaitGroup
}

type backoff struct {
	doublings int
	until     time.Time
}

// NewPassive returns passive health for pool. logger may be nil. Servers
// that a previous runtime ejected (their State outlives a reload) get their
// readmission scheduled here.
func NewPassive(pool *upstream.Pool, cfg PassiveConfig, logger *slog.Logger) *Passive {
	p := &Passive{
		pool:    pool,
		cfg:     cfg.withDefaults(),
		log:     orDiscard(logger),
		timers:  map[*upstream.State]*time.Timer{},
		backoff: map[*upstream.State]backoff{},
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range pool.Servers {
		if until := s.EjectedUntil(); !until.IsZero() {
			p.scheduleLocked(s, until)
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
// connection error, or a 5xx when those count. A success ends the run of
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
	if p.closed || s.Ejected(now) {
		p.mu.Unlock()
		return
	}
	ejected := 0
	for _, o := range p.pool.Servers {
		if o.Ejected(now) {
			ejected++
		}
	}
	if ejected+1 > len(p.pool.Servers)*p.cfg.MaxEjectionPercent/100 {
		// At the cap the server stays in; its failures keep counting, so it
		// is ejected as soon as another server comes back.
		p.mu.Unlock()
		p.log.LogAttrs(context.Background(), slog.LevelDebug, "ejection skipped: max_ejection_percent reached",
			slog.String("upstream", p.pool.Name), slog.String("server", s.Name))
		return
	}
	b := p.backoff[s.State]
	if !b.until.IsZero() && now.Sub(b.until) > p.cfg.MaxEjectionTime {
		b.doublings = 0 // it behaved for a long spell: forgive the past
	}
	d := p.cfg.EjectionTime
	for range b.doublings {
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
		b.doublings++
	}
	b.until = until
	p.backoff[s.State] = b
	p.pool.Refresh(now)
	p.scheduleLocked(s, until)
	p.mu.Unlock()

	p.log.LogAttrs(context.Background(), slog.LevelWarn, "server ejected",
		slog.String("upstream", p.pool.Name), slog.String("server", s.Name),
		slog.String("check", "passive"), slog.String("reason", reason), slog.Duration("for", d))
	if p.OnTransition != nil {
		p.OnTransition(s, false, reason)
	}
}

// scheduleLocked arms the readmission of s at until. p.mu must be held.
func (p *Passive) scheduleLocked(s *upstream.Server, until time.Time) {
	if old := p.timers[s.State]; old != nil && old.Stop() {
		p.wg.Done()
	}
	p.wg.Add(1)
	p.timers[s.State] = time.AfterFunc(until.Sub(p.now()), func() {
		defer p.wg.Done()
		p.readmit(s)
	})
}

func (p *Passive) readmit(s *upstream.Server) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	delete(p.timers, s.State)
	now := p.now()
	if s.Ejected(now) {
		// The clock says not yet (a fake clock in tests, or a shift):
		// try again when it says so.
		p.scheduleLocked(s, s.EjectedUntil())
		p.mu.Unlock()
		return
	}
	readmitted := s.ReadmitAt(now)
	if readmitted {
		p.pool.Refresh(now)
	}
	p.mu.Unlock()
	if !readmitted {
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

// Close stops the readmission timers and waits for any that is running.
// Ejected servers stay ejected in their State; the Passive of the next
// runtime readmits them. Report after Close ejects nothing.
func (p *Passive) Close() {
	p.mu.Lock()
	p.closed = true
	for st, t := range p.timers {
		if t.Stop() {
			p.wg.Done()
		}
		delete(p.timers, st)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
