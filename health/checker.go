package health

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

// Config configures active health checks of one upstream. Zero fields take
// the defaults named on each. It is a plain struct so this package does not
// depend on the config package; the server maps one to the other.
type Config struct {
	// Interval is the time between check rounds; default 10s. Each wait is
	// jittered by ±10% so proxies restarted together do not probe in step.
	Interval time.Duration
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
// runs a round of probes every Interval and applies the rise/fall
// thresholds.
//
// State before the first check: servers start healthy, so a fresh proxy
// serves at once, and the first round runs as soon as Start is called. The
// first verdict on a server never checked before counts in full: a server
// that is down at start-up leaves the pool after one failed probe, not
// UnhealthyThreshold of them. A server known before a reload keeps its
// state, since its State lives in the upstream.Registry, and is then judged
// by the thresholds as usual.
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
	t := time.NewTimer(0) // the first round runs at once
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.round(ctx)
		t.Reset(jitter(c.cfg.Interval))
	}
}

// jitter spreads d by ±10%.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// round probes every server, Concurrency at a time, then applies the
// verdicts in config order. The probes end before round returns, so the
// loop owns them.
func (c *Checker) round(ctx context.Context) {
	servers := c.pool.Servers
	results := make([]upstream.Check, len(servers))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(c.cfg.Concurrency, len(servers)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(servers); i = int(next.Add(1) - 1) {
				results[i] = c.probe(ctx, c.targets[i])
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // stopped mid-round: the probes failed because of us
	}
	for i, s := range servers {
		c.apply(s, results[i])
	}
}

// apply records one probe's outcome and moves the server across the
// thresholds. The run of passes or failures is the server's State's, so a
// reload does not start it again from zero.
func (c *Checker) apply(s *upstream.Server, res upstream.Check) {
	_, checkedBefore := s.LastCheck()
	run := s.RecordCheck(res)
	if c.OnCheck != nil {
		c.OnCheck(s, res)
	}
	reason := "GET " + c.cfg.Path + ": " + res.Result
	if res.OK {
		if !s.Healthy() && run >= c.cfg.HealthyThreshold {
			c.set(s, true, reason)
		}
		return
	}
	if s.Healthy() && (run >= c.cfg.UnhealthyThreshold || !checkedBefore) {
		c.set(s, false, reason)
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
