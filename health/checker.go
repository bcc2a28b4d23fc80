package health

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tbsphathuynh/proxy/internal/localfault"
	"github.com/tbsphathuynh/proxy/upstream"
)

// Config configures active health checks of one upstream. Zero fields take
// the defaults named on each. It is a plain struct so this package does not
// depend on the config package; the server maps one to the other.
type Config struct {
	// Interval is the time between two checks of a server whose state is
	// settled; default 10s. Each wait is jittered by ±10% so proxies
	// restarted together do not probe in step.
	Interval time.Duration
	// FastInterval is the time between two checks of a server whose state
	// is unproven or changing (see Checker); default a tenth of Interval,
	// between 100ms and 1s. A value not below Interval makes every check
	// wait Interval, as HAProxy's fastinter does when set so.
	FastInterval time.Duration
	// Timeout bounds one probe, connect to body; default 2s. Rounds never
	// overlap: the next one starts Interval after the previous one ended.
	Timeout time.Duration
	// Path is the request target of the GET under the server's base path
	// (a server at http://h/app is checked at /app/health for "/health"),
	// as requests are forwarded under it; default "/".
	Path string
	// Host, when set, replaces the Host header (a virtual host the server
	// answers health checks on).
	Host string
	// ExpectedStatus lists the passing status codes; nil means 200-399.
	// Redirects are not followed: a 3xx is judged as it is.
	ExpectedStatus StatusRanges
	// ExpectedBody, when set, must occur in the first MaxBody bytes of the
	// response body.
	ExpectedBody string
	// HealthyThreshold is how many consecutive passes bring an unhealthy
	// server back (rise); default 2.
	HealthyThreshold int
	// UnhealthyThreshold is how many consecutive failures take a healthy
	// server out (fall); default 3.
	UnhealthyThreshold int
	// Concurrency bounds the probes in flight in one round; default 8.
	Concurrency int
	// Transport sends the probes; nil means a transport of the Checker's
	// own that opens a new connection per probe, so a check also tests
	// that the server accepts connections. A Transport passed in is not
	// closed by Stop.
	Transport http.RoundTripper
	// DialTLSContext, if set, opens the checker's own connections to https
	// servers (the servers' own TLS settings); nil means net/http's
	// default TLS. It is unused with a Transport passed in.
	DialTLSContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Probe, if set, checks a server in place of the GET (see GRPCProbe),
	// within Timeout; Path, Host, ExpectedStatus and ExpectedBody are
	// then unused.
	Probe Probe
}

// MaxBody is how much of a response body a check reads when it looks for
// ExpectedBody.
const MaxBody = 64 << 10

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.FastInterval <= 0 {
		c.FastInterval = min(max(c.Interval/10, 100*time.Millisecond), time.Second)
	}
	c.FastInterval = min(c.FastInterval, c.Interval)
	if !strings.HasPrefix(c.Path, "/") {
		c.Path = "/" + c.Path // "health" must not become part of the host
	}
	if c.HealthyThreshold <= 0 {
		c.HealthyThreshold = 2
	}
	if c.UnhealthyThreshold <= 0 {
		c.UnhealthyThreshold = 3
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	return c
}

// Setter records a health verdict on a server and reports whether it
// changed the server's state. The Checker writes through it, so tests and
// custom builds can watch or redirect the writes.
type Setter interface {
	SetHealthy(s *upstream.Server, healthy bool, reason string, now time.Time) bool
}

// stateSetter is the default Setter: a compare-and-swap on the server's
// state, which rebuilds the snapshots of the pools it is in when it
// changed.
type stateSetter struct{}

func (stateSetter) SetHealthy(s *upstream.Server, healthy bool, reason string, now time.Time) bool {
	return s.State.SetHealthy(healthy, reason, now)
}

// Transition is called once per real change of a server's health, active or
// passive; reason says what caused it. It is the hook for metrics and
// events.
type Transition func(s *upstream.Server, healthy bool, reason string)

// Checker actively checks the servers of one pool: one goroutine per pool
// checks each server when it is due and applies the rise/fall thresholds.
//
// A server's state, as the checks see it, is one of:
//
//   - unproven: no check has passed yet, and fewer than UnhealthyThreshold
//     have failed in a row. A server starts so, in the pool, and the first
//     check runs as soon as Start is called. While unproven, each check
//     counts in full: a failure takes the server out, a pass brings it
//     back. A backend that starts a moment after the proxy is thus in the
//     pool one FastInterval after it listens, and a dead one is out after
//     one failed check.
//   - up, or down, settled: the last HealthyThreshold checks passed (up)
//     or the last UnhealthyThreshold failed (down). Checked every Interval.
//   - changing: up with a run of failures shorter than UnhealthyThreshold,
//     or down with a run of passes shorter than HealthyThreshold. The
//     thresholds decide, as usual.
//
// Unproven and changing servers are checked every FastInterval, so a
// verdict that is still open is reached in seconds (HAProxy's fastinter).
//
// A passing check also ends a passive ejection that began before the check
// did: the check opened a new connection to the server and got an answer,
// which is better news than the failures that ejected it (Envoy does the
// same by default).
//
// All of this lives in each server's State, which the upstream.Registry
// keeps across reloads: a server known before a reload keeps its state,
// its run of checks and its cadence.
type Checker struct {
	// Setter receives verdicts; nil means the pool's own states.
	Setter Setter
	// OnTransition, if set, is called after each real transition.
	OnTransition Transition
	// OnCheck, if set, is called with the result of every probe (metrics).
	OnCheck func(s *upstream.Server, res upstream.Check)

	pool      *upstream.Pool
	cfg       Config
	log       *slog.Logger
	targets   []string // probe URL per server of pool.Servers
	transport http.RoundTripper
	own       *http.Transport // our default transport, closed by Stop
	localLog  localfault.Every

	// mu guards cancel, which Start sets once.
	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewChecker returns a checker for pool. logger may be nil. Set the
// exported fields, if at all, before Start.
func NewChecker(pool *upstream.Pool, cfg Config, logger *slog.Logger) *Checker {
	cfg = cfg.withDefaults()
	c := &Checker{
		pool:      pool,
		cfg:       cfg,
		log:       orDiscard(logger),
		targets:   make([]string, len(pool.Servers)),
		transport: cfg.Transport,
	}
	for i, s := range pool.Servers {
		c.targets[i] = s.URL.Scheme + "://" + s.URL.Host + strings.TrimSuffix(s.URL.EscapedPath(), "/") + cfg.Path
	}
	if c.transport == nil {
		c.own = &http.Transport{
			DialContext:            (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
			DisableKeepAlives:      true,
			DisableCompression:     true,
			MaxResponseHeaderBytes: MaxBody,
			DialTLSContext:         cfg.DialTLSContext,
		}
		c.transport = c.own
	}
	return c
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// Start launches the checking loop; it returns at once. The loop ends when
// ctx is done or Stop is called. Start runs the loop at most once per
// Checker.
func (c *Checker) Start(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		return
	}
	ctx, c.cancel = context.WithCancel(ctx)
	c.wg.Add(1)
	go c.run(ctx)
}

// Stop ends the loop, waits for it and its probes to return, and closes
// the checker's own idle connections. It is safe to call more than once,
// and before Start.
func (c *Checker) Stop() {
	c.mu.Lock()
	cancel := c.cancel
	if cancel == nil {
		c.cancel = func() {} // a later Start does nothing
	}
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	c.wg.Wait()
	if c.own != nil {
		c.own.CloseIdleConnections()
	}
}

func (c *Checker) run(ctx context.Context) {
	defer c.wg.Done()
	servers := c.pool.Servers
	due := make([]time.Time, len(servers))
	now := time.Now()
	for i, s := range servers {
		due[i] = c.resume(s, now)
	}
	t := time.NewTimer(0)
	defer t.Stop()
	batch := make([]int, 0, len(servers))
	for {
		if len(servers) == 0 {
			<-ctx.Done()
			return
		}
		next := slices.MinFunc(due, time.Time.Compare)
		t.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		batch = batch[:0]
		now := time.Now()
		for i, d := range due {
			if !d.After(now) {
				batch = append(batch, i)
			}
		}
		if !c.round(ctx, batch) {
			return
		}
		// One spread for the whole batch keeps servers that were checked
		// together in step, so the loop wakes once for them, not once each.
		spread := rand.Float64()
		end := time.Now()
		for _, i := range batch {
			due[i] = end.Add(jitterBy(c.interval(servers[i]), spread))
		}
	}
}

// resume says when a server is first due: at once if it was never
// checked, else an interval after its last check, so a reload neither
// delays a check nor adds one.
func (c *Checker) resume(s *upstream.Server, now time.Time) time.Time {
	last, ok := s.LastCheck()
	if !ok {
		return now
	}
	d := c.interval(s)
	if at := last.At.Add(last.Latency + d); at.Before(now.Add(d)) {
		return at
	}
	return now.Add(d) // a clock that went back must not stop the checks

}

// interval is the wait before the next check of s: Interval once its
// state is settled, FastInterval while it is unproven or changing.
func (c *Checker) interval(s *upstream.Server) time.Duration {
	run := s.CheckRun()
	settled := run >= c.cfg.HealthyThreshold
	if !s.Healthy() {
		settled = -run >= c.cfg.UnhealthyThreshold
	}
	if settled {
		return c.cfg.Interval
	}
	return c.cfg.FastInterval
}

// jitter spreads d by ±10%.
func jitter(d time.Duration) time.Duration { return jitterBy(d, rand.Float64()) }

// jitterBy spreads d by ±10%, spread in [0, 1) choosing where.
func jitterBy(d time.Duration, spread float64) time.Duration {
	return d - d/10 + time.Duration(spread*float64(d/5))
}

// round probes the servers at the given indexes, Concurrency at a time,
// then applies the verdicts in config order. The probes end before round
// returns, so the loop owns them. It reports false when ctx ended.
func (c *Checker) round(ctx context.Context, batch []int) bool {
	servers := c.pool.Servers
	results := make([]upstream.Check, len(batch))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(c.cfg.Concurrency, len(batch)) {
		wg.Go(func() {
			for k := int(next.Add(1) - 1); k < len(batch); k = int(next.Add(1) - 1) {
				results[k] = c.probe(ctx, c.targets[batch[k]])
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return false // stopped mid-round: the probes failed because of us
	}
	for k, i := range batch {
		c.apply(servers[i], results[k])
	}
	return true
}

// apply records one probe's outcome and moves the server across the
// thresholds. The run of passes or failures is the server's State's, so a
// reload does not start it again from zero.
func (c *Checker) apply(s *upstream.Server, res upstream.Check) {
	if c.skipLocal(s, res) {
		return
	}
	proven := s.Proven()
	run := s.RecordCheck(res)
	if c.OnCheck != nil {
		c.OnCheck(s, res)
	}
	reason := "GET " + c.cfg.Path + ": " + res.Result
	if res.OK {
		s.Prove()
		if !s.Healthy() && (run >= c.cfg.HealthyThreshold || !proven) {
			c.set(s, true, reason)
		}
		c.readmit(s, res, reason)
		return
	}
	if run >= c.cfg.UnhealthyThreshold {
		s.Prove()
	}
	if s.Healthy() && (run >= c.cfg.UnhealthyThreshold || !proven) {
		c.set(s, false, reason)
	}
}

// readmit ends a passive ejection of s that began before the passing
// check res did.
func (c *Checker) readmit(s *upstream.Server, res upstream.Check, reason string) {
	now := time.Now()
	since, ejected := s.EjectedSince(now)
	if !ejected || !since.Before(res.At) || !s.ReadmitAt(now) {
		return
	}
	s.Unschedule(upstream.ReadmitTimer)
	c.log.LogAttrs(context.Background(), slog.LevelInfo, "server readmitted",
		slog.String("upstream", c.pool.Name), slog.String("server", s.Name),
		slog.String("check", "active"), slog.String("reason", reason))
	if c.OnTransition != nil {
		c.OnTransition(s, true, reason)
	}
}

func (c *Checker) set(s *upstream.Server, healthy bool, reason string) {
	setter := c.Setter
	if setter == nil {
		setter = stateSetter{}
	}
	if !setter.SetHealthy(s, healthy, reason, time.Now()) {
		return
	}
	level, msg := slog.LevelWarn, "server down"
	if healthy {
		level, msg = slog.LevelInfo, "server up"
	}
	c.log.LogAttrs(context.Background(), level, msg,
		slog.String("upstream", c.pool.Name), slog.String("server", s.Name),
		slog.String("check", "active"), slog.String("reason", reason))
	if c.OnTransition != nil {
		c.OnTransition(s, healthy, reason)
	}
}
