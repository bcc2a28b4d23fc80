package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/tbsphathuynh/proxy/balancer"
	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/health"
	"github.com/tbsphathuynh/proxy/internal/accesslog"
	"github.com/tbsphathuynh/proxy/internal/forward"
	"github.com/tbsphathuynh/proxy/internal/grpcwire"
	"github.com/tbsphathuynh/proxy/internal/reqinfo"
	"github.com/tbsphathuynh/proxy/internal/servertls"
	"github.com/tbsphathuynh/proxy/middleware"
	"github.com/tbsphathuynh/proxy/policy"
	"github.com/tbsphathuynh/proxy/route"
	"github.com/tbsphathuynh/proxy/upstream"
)

// runtime is everything compiled from one config: routes, upstreams and
// their pools, the handler chain. It is immutable once built; a reload
// builds a new one and swaps it in whole, so a half-applied config cannot
// exist.
type runtime struct {
	cfg       *config.Config
	handler   http.Handler
	table     *route.Table
	routes    []http.Handler
	catchAll  http.Handler // nil when there is no default upstream
	upstreams map[string]*compiledUpstream
	// order lists upstream names as the config has them, default first.
	order []string
	// hsts is the Strict-Transport-Security value for answers over TLS,
	// or "".
	hsts string

	// The direct lane (see direct.go): on unless turned off or tracing,
	// which reads and rewrites the request's header, is on; directs[i] is route i's
	// forwarder when it can serve the lane, directAll the default
	// upstream's; accessLog is the chain's, nil when off.
	direct    bool
	accessLog *accesslog.AccessLog
	directs   []*laneRoute
	directAll *laneRoute

	// releases drop the runtime's references to what it shares with
	// other runtimes (see shared.go); inflight counts the requests using
	// it; retired is set when a reload replaced it, released once it let
	// go.
	releases []func()
	inflight atomic.Int64
	retired  atomic.Bool
	released atomic.Bool
}

type compiledUpstream struct {
	fwd     *forward.Upstream
	pool    *upstream.Pool
	cfg     *config.Upstream
	checker *health.Checker // nil when active checks are off
	stop    []func()
}

// compile builds a runtime from a validated config. Nothing it does is
// visible until the caller swaps the runtime in; start makes its
// background work (health checks) run.
func (s *Server) compile(cfg *config.Config) (_ *runtime, err error) {
	rt := &runtime{cfg: cfg, upstreams: make(map[string]*compiledUpstream), hsts: hstsValue(cfg.HSTS)}
	defer func() {
		if err != nil {
			// The pools joined their servers' states and the runtime holds
			// shared things: let go of both.
			rt.discard()
		}
	}()
	for _, name := range cfg.UpstreamNames() {
		uc := cfg.UpstreamByName(name)
		cu, err := s.compileUpstream(rt, name, uc)
		if err != nil {
			return nil, err
		}
		rt.upstreams[name] = cu
		rt.order = append(rt.order, name)
	}

	rules := make([]route.Rule, len(cfg.Routes))
	rt.routes = make([]http.Handler, len(cfg.Routes))
	rt.directs = make([]*laneRoute, len(cfg.Routes))
	for i, rc := range cfg.Routes {
		rules[i] = route.Rule{Host: rc.Match.Host, PathPrefix: rc.Match.PathPrefix}
		cu := rt.upstreams[rc.Upstream]
		if cu == nil {
			return nil, fmt.Errorf("route %d: unknown upstream %q", i, rc.Upstream)
		}
		strip := ""
		if rc.StripPrefix {
			strip = rc.Match.PathPrefix
		}
		name := routeName(i, rc)
		var fb http.Handler
		if f := rc.Fallback; f != nil {
			fb = fallbackHandler(rt, f, s.log)
		}
		h, direct, err := s.routeHandler(rt, name, cu, strip, rc.RateLimit, fb, rc.Policies)
		if err != nil {
			return nil, err
		}
		rt.routes[i], rt.directs[i] = h, direct
	}
	rt.table = route.New(rules)
	if cu := rt.upstreams[config.DefaultUpstream]; cu != nil {
		h, direct, err := s.routeHandler(rt, config.DefaultUpstream, cu, "", nil, nil, nil)
		if err != nil {
			return nil, err
		}
		rt.catchAll, rt.directAll = h, direct
	}

	accessLog, err := s.accessLogger(rt, cfg.Logging)
	if err != nil {
		return nil, err
	}
	tracer, err := s.tracer(cfg.Tracing)
	if err != nil {
		return nil, err
	}
	rt.direct, rt.accessLog = cfg.Client.DirectLaneOn() && !tracer.Enabled(), accessLog
	// The direct lane (direct.go) does what each of these does without
	// running them; a middleware added here must be given its place there
	// (docs/performance.md, "The handler chain, middleware by middleware").
	rt.handler = middleware.Chain(http.HandlerFunc(rt.dispatch),
		middleware.Recover(s.log, s.metrics.Panic),
		middleware.CloseChunked,
		accesslog.Track(accessLog, s.observe),
		middleware.RefuseMalformed,
		tracer.Middleware,
	)
	return rt, nil
}

// routeHandler is the forwarder of a route behind its rate limit (the
// route's own, else its upstream's), behind its policies. direct is the
// route as the direct lane serves it, nil when it cannot: its forwarder
// and balancer must need no more of a request than the lane has, and so
// must a rate limit's key (the client's address, with no proxies trusted
// to forward it); a route with policies is never on the lane.
func (s *Server) routeHandler(rt *runtime, name string, cu *compiledUpstream, strip string, rl *config.RateLimit, fallback http.Handler, policies []config.Policy) (h http.Handler, direct *laneRoute, err error) {
	fr := forward.NewRoute(name, cu.fwd, strip, s.log)
	fr.AllowUpgrades(rt.cfg.Client.AllowedUpgrades)
	if s.opts.ModifyResponse != nil || s.opts.ErrorHandler != nil {
		fr.SetHooks(forward.Hooks{ModifyResponse: s.opts.ModifyResponse, ErrorHandler: s.opts.ErrorHandler})
	}
	if fallback != nil {
		fr.SetFallback(fallback)
	}
	h = fr
	if directBalancing(cu.cfg.LoadBalancing) && fr.DirectCapable() && len(policies) == 0 {
		direct = &laneRoute{fr: fr}
	}
	if rl == nil {
		rl = cu.cfg.RateLimit
	}
	if rl != nil {
		l, err := s.limiter(rt, name, rl)
		if err != nil {
			return nil, nil, err
		}
		onLimited := func() { s.metrics.RateLimited(name) }
		if direct != nil {
			// Behind trusted proxies the key is read from X-Forwarded-For,
			// which the lane's request does not carry.
			if rl.Key == "ip" && len(rl.TrustedProxies) == 0 {
				direct.limit, direct.onLimited = &l, onLimited
			} else {
				direct = nil
			}
		}
		h = middleware.RateLimit(l.limiter, l.key, onLimited)(h)
	}
	if len(policies) > 0 {
		env := policy.Env{Route: name, Log: s.log, Dropped: func() { s.metrics.MirrorDropped(name).Inc() }, Upstream: func(name string) http.RoundTripper {
			if cu := rt.upstreams[name]; cu != nil {
				return cu.fwd
			}
			return nil
		}}
		chain, err := policy.Chain(policies, env, func(p string) func() {
			return s.metrics.PolicyRejections(name, p).Inc
		})
		if err != nil {
			return nil, nil, fmt.Errorf("route %s: %w", name, err)
		}
		h = chain(h)
	}
	if h == http.Handler(fr) {
		return h, direct, nil
	}
	return labeled{fr, h}, direct, nil
}

// labeled names a route in the request's record before its rate limit
// runs, so that a 429 is logged and counted under the route and upstream
// it matched, like any answer of the route.
type labeled struct {
	fr   *forward.Route
	next http.Handler
}

func (l labeled) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.fr.Label(reqinfo.From(r.Context()))
	l.next.ServeHTTP(w, r)
}

// observe records a served request in the metrics; bytes is the response
// body sent to the client.
func (s *Server) observe(info *reqinfo.Info, _ string, status int, bytes int64, d time.Duration) {
	s.metrics.ObserveBytes(info.Route, info.Upstream, info.Server, status, d, info.RequestBytes, bytes)
	s.metrics.Retry(info.Upstream, info.Retries)
	if info.GRPC {
		s.metrics.GRPCRequest(info.Route, info.Upstream, info.GRPCStatus)
	}
}

// fallbackHandler is a route's answer when its upstream cannot: another
// upstream, or a fixed answer.
func fallbackHandler(rt *runtime, f *config.Fallback, log *slog.Logger) http.Handler {
	if f.Upstream != "" {
		fr := forward.NewRoute("fallback:"+f.Upstream, rt.upstreams[f.Upstream].fwd, "", log)
		fr.AllowUpgrades(rt.cfg.Client.AllowedUpgrades)
		return fr
	}
	h := http.Header{}
	for k, v := range f.Headers {
		h.Set(k, v)
	}
	return forward.Static(f.Status, f.Body, h)
}

func routeName(i int, rc config.Route) string {
	if rc.Name != "" {
		return rc.Name
	}
	return fmt.Sprintf("route%d", i)
}

func (s *Server) compileUpstream(rt *runtime, name string, uc *config.Upstream) (_ *compiledUpstream, err error) {
	cb := uc.CircuitBreaker
	servers := make([]*upstream.Server, len(uc.Servers))
	// Servers discovery finds once the proxy serves join under slow start,
	// as servers returning to the pool do; at start-up none has traffic to
	// be protected from.
	serving := s.rt.Load() != nil
	for i, sc := range uc.Servers {
		u, err := url.Parse(sc.URL)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: server %q: %w", name, sc.URL, err)
		}
		key := upstream.Key(name, sc.URL)
		joins := serving && sc.Source == config.SourceDNS && !s.states.Known(key)
		src := sc.Source
		if src == "" {
			src = config.SourceConfig
		}
		sv := &upstream.Server{
			Source:    src,
			Name:      sc.Name,
			URL:       u,
			Weight:    sc.Weight,
			Backup:    sc.Backup,
			MaxConns:  int64(sc.MaxConnections),
			SlowStart: sc.SlowStart.D(),
			State:     s.states.State(key),
		}
		if joins && sv.SlowStart > 0 {
			sv.StartRamp(time.Now())
		}
		if cb != nil {
			sv.HalfOpenRequests = int64(cb.HalfOpenRequests)
		} else if c := sv.Circuit(); c != upstream.CircuitClosed {
			// The breaker was removed from the config: nothing would ever
			// close this circuit again.
			sv.SetCircuit(c, upstream.CircuitClosed, "circuit breaker removed from config", time.Now())
		}
		servers[i] = sv
	}
	pool := upstream.NewPool(name, servers)
	defer func() {
		if err != nil {
			pool.Close()
		}
	}()
	policy, err := balancer.New(uc.LoadBalancing.Strategy, balancer.Options{
		HashKey:     uc.LoadBalancing.HashKey,
		BoundedLoad: uc.LoadBalancing.BoundedLoad,
		Settings:    uc.LoadBalancing.Options.Value,
	})
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", name, err)
	}
	// health names the upstream in each of its lines itself.
	log := s.log
	// The pool's snapshot follows its servers' transitions until the
	// runtime is closed. Passive health and the breaker need no stopping:
	// their timers belong to the servers' states.
	cu := &compiledUpstream{pool: pool, cfg: uc, stop: []func(){pool.Close}}

	st := servertls.Collect(uc.Servers)
	s.warnInsecure(name, uc.Servers)

	hc := uc.HealthChecks
	pc := health.PassiveConfig{}
	if ps := hc.Passive; ps != nil {
		pc = health.PassiveConfig{
			Enabled:             ps.Enabled == nil || *ps.Enabled,
			ConsecutiveFailures: ps.ConsecutiveFailures,
			EjectionTime:        ps.EjectionTime.D(),
			MaxEjectionTime:     ps.MaxEjectionTime.D(),
			MaxEjectionPercent:  ps.MaxEjectionPercent,
			On5xx:               ps.On5xx,
		}
	}
	passive := health.NewPassive(pool, pc, log)
	observers := observers{passive}

	if cb != nil {
		br := health.NewBreaker(pool, health.BreakerConfig{
			ConsecutiveFailures: cb.ConsecutiveFailures,
			FailureRatio:        cb.FailureRatio,
			Window:              cb.Window.D(),
			MinRequests:         cb.MinRequests,
			OpenTime:            cb.OpenTime.D(),
		}, log)
		observers = append(observers, br)
	}

	tr, err := s.transport(rt, uc.Timeouts, st, uc.Protocol)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", name, err)
	}

	if hc.Enabled == nil || *hc.Enabled {
		expected, err := health.ParseStatusRanges(hc.ExpectedStatus)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: health_checks.expected_status: %w", name, err)
		}
		hdial, err := healthDial(st, hc.Timeout.D())
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", name, err)
		}
		var probe health.Probe
		if g := hc.GRPC; g != nil {
			// Over the upstream's own transport: the one that speaks
			// HTTP/2 to its servers, as the calls do.
			probe = health.GRPCProbe(tr, g.Service)
		}
		ck := health.NewChecker(pool, health.Config{
			Probe:              probe,
			Interval:           hc.Interval.D(),
			FastInterval:       hc.FastInterval.D(),
			Timeout:            hc.Timeout.D(),
			Path:               hc.Path,
			Host:               hc.Host,
			ExpectedStatus:     expected,
			ExpectedBody:       hc.ExpectedBody,
			HealthyThreshold:   hc.HealthyThreshold,
			UnhealthyThreshold: hc.UnhealthyThreshold,
			DialTLSContext:     hdial,
		}, log)
		ck.OnCheck = func(sv *upstream.Server, res upstream.Check) {
			s.metrics.HealthCheck(name, sv.Name, res.OK, res.Latency)
		}
		cu.checker = ck
		cu.stop = append(cu.stop, ck.Stop)
	}

	rc := uc.Retries
	retry := forward.RetryPolicy{
		Attempts:      rc.Attempts,
		OnStatus:      rc.OnStatus,
		MaxBodyBytes:  int64(rc.MaxBodyBytes),
		PerTryTimeout: rc.PerTryTimeout.D(),
		Backoff:       rc.Backoff.D(),
	}
	if rc.Attempts > 0 {
		retry.Budget = forward.NewBudget(rc.Budget, rc.MinPerSecond)
	}
	for _, name := range rc.RetryOn {
		retry.OnGRPCStatus = append(retry.OnGRPCStatus, config.GRPCRetryOn[name])
	}
	cu.fwd = &forward.Upstream{
		Name:       name,
		Pool:       pool,
		Picker:     policy,
		Transport:  tr,
		Observer:   observers,
		Retry:      retry,
		RetryAfter: retryAfter(uc),
	}
	return cu, nil
}

// observers fans one attempt's outcome out to every observer.
type observers []forward.Observer

func (o observers) Observe(s *upstream.Server, status int, err error, d time.Duration) {
	for _, x := range o {
		x.Observe(s, status, err, d)
	}
}

// retryAfter suggests when a client may try again after a 503: about when
// the next health check may bring a server back.
func retryAfter(uc *config.Upstream) string {
	d := uc.HealthChecks.Interval.D()
	if d <= 0 || d > 30*time.Second {
		d = 30 * time.Second
	}
	return fmt.Sprint(int((d + time.Second - 1) / time.Second))
}

// dispatch sends r to the first matching route, else to the default
// upstream.
func (rt *runtime) dispatch(w http.ResponseWriter, r *http.Request) {
	if i := rt.table.Match(r); i >= 0 {
		rt.routes[i].ServeHTTP(w, r)
		return
	}
	if rt.catchAll != nil {
		rt.catchAll.ServeHTTP(w, r)
		return
	}
	if grpcwire.IsCall(r.Header) {
		forward.WriteGRPCError(w, r, forward.ErrNoRoute)
		return
	}
	forward.WriteError(w, forward.ErrNoRoute, "")
}

// start begins the runtime's background work: one health-check loop per
// upstream.
func (rt *runtime) start() {
	for _, name := range rt.order {
		if ck := rt.upstreams[name].checker; ck != nil {
			ck.Start(context.Background())
		}
	}
}

// close stops the runtime's background work; in-flight requests on it are
// unaffected.
func (rt *runtime) close() {
	for _, cu := range rt.upstreams {
		for _, f := range cu.stop {
			f()
		}
	}
}

// keys lists the state keys of every server, for the registry to keep.
func (rt *runtime) keys() map[string]bool {
	keep := make(map[string]bool)
	for _, cu := range rt.upstreams {
		for _, sv := range cu.pool.Servers {
			keep[sv.Key()] = true
		}
	}
	return keep
}
