// Package metrics defines the proxy's Prometheus metrics on a registry the
// caller passes in: no global state, so tests and embedded builds can run
// several proxies in one process.
//
// Every label value comes from the config (route, upstream and server
// names) or from a bounded set (status codes 100-599, "success"/"failure"),
// never from request data, so a hostile client cannot grow the number of
// series. The request path calls Observe, which allocates nothing once a
// (route, upstream, server, code) combination has been seen.
package metrics

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metric names, shared with the admin package's /api/stats and the Grafana
// dashboard in deploy/. They are part of the product contract (docs/observability.md).
const (
	RequestsTotal          = "proxy_requests_total"
	RequestDuration        = "proxy_request_duration_seconds"
	ServerUp               = "proxy_upstream_server_up"
	ServerInFlight         = "proxy_upstream_server_in_flight"
	ServerEjections        = "proxy_upstream_server_ejections_total"
	ServerDrained          = "proxy_upstream_server_drained"
	ServerLatencyEWMA      = "proxy_upstream_server_latency_ewma_seconds"
	ServerCircuit          = "proxy_upstream_server_circuit_state"
	ServerRequestBytes     = "proxy_upstream_server_request_bytes_total"
	ServerResponseBytes    = "proxy_upstream_server_response_bytes_total"
	RateLimitedTotal       = "proxy_rate_limited_total"
	RateLimitStoreUp       = "proxy_rate_limit_store_up"
	RateLimitStoreSwitches = "proxy_rate_limit_store_switches_total"
	RateLimitStoreErrors   = "proxy_rate_limit_store_errors_total"
	RetriesTotal           = "proxy_retries_total"
	ProtocolErrorsTotal    = "proxy_upstream_protocol_errors_total"
	ConfigReloadsTotal     = "proxy_config_reloads_total"
	ConfigLastReloadOK     = "proxy_config_last_reload_successful"
	ConfigLastReloadAt     = "proxy_config_last_reload_success_timestamp_seconds"
	HealthCheckDuration    = "proxy_health_check_duration_seconds"
	BuildInfo              = "proxy_build_info"
	PanicsTotal            = "proxy_panics_total"
	DiscoveryErrorsTotal   = "proxy_discovery_errors_total"
	PolicyRejectionsTotal  = "proxy_policy_rejections_total"
	MirrorDroppedTotal     = "proxy_mirror_dropped_total"
	AcceptErrorsTotal      = "proxy_accept_errors_total"
	GRPCRequestsTotal      = "proxy_grpc_requests_total"
	ClientRequestsTotal    = "proxy_client_requests_total"
)

// ClientProtos are the values of proxy_client_requests_total's proto
// label, one per HTTP version a client can speak to the proxy.
var ClientProtos = []string{"HTTP/1", "HTTP/2", "HTTP/3"}

// AcceptReasons are the values of proxy_accept_errors_total's reason
// label: the resource that ran out, or other.
var AcceptReasons = []string{"emfile", "enfile", "enobufs", "enomem", "other"}

// DurationBuckets are the request latency bucket bounds in seconds. A proxy
// adds well under a millisecond, so the low end is fine enough to see its
// own overhead against a fast backend; the high end reaches the 10s where
// clients usually give up. 14 buckets keep a server's series count modest.
var DurationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// healthBuckets cover active health checks, which time out after a few
// seconds at most.
var healthBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// codeLabels holds the label value of every status code from 100 to 599,
// built once so the request path never formats an integer.
var codeLabels = func() (l [600]string) {
	for c := 100; c < len(l); c++ {
		l[c] = strconv.Itoa(c)
	}
	return l
}()

// otherCode is the label of a status code outside 100-599, which only a
// broken server can produce; folding them keeps the label bounded.
const otherCode = "other"

// Metrics holds the proxy's collectors. Its methods are safe for concurrent
// use. The zero value is not usable: call New.
type Metrics struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	rateLimited    *prometheus.CounterVec
	policyRejected *prometheus.CounterVec
	mirrorDropped  *prometheus.CounterVec
	retries        *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	discoveryErrs  *prometheus.CounterVec
	reloadOK       prometheus.Gauge
	reloadAt       prometheus.Gauge
	health         *prometheus.HistogramVec
	build          *prometheus.GaugeVec
	storeUp        *prometheus.GaugeVec
	storeSwitch    *prometheus.CounterVec
	storeErrors    *prometheus.CounterVec
	protoErrors    *prometheus.CounterVec
	reqBytes       *prometheus.CounterVec
	resBytes       *prometheus.CounterVec
	panics         prometheus.Counter
	accepts        *prometheus.CounterVec
	grpc           *prometheus.CounterVec
	clientProto    *prometheus.CounterVec
	servers        *serverCollector
	// byProto are clientProto's children, resolved once: index major-1.
	byProto [3]prometheus.Counter

	// now is the clock for reload timestamps; tests replace it.
	now func() time.Time

	// Children already resolved from the vectors, so the hot path neither
	// hashes label values nor builds a []string for WithLabelValues.
	reqs     cowMap[reqKey, reqChild]
	limited  cowMap[string, prometheus.Counter]
	storeErr cowMap[string, prometheus.Counter]
	retried  cowMap[string, prometheus.Counter]
	grpcs    cowMap[grpcKey, prometheus.Counter]
}

type grpcKey struct {
	route, upstream string
	code            int
}

type reqKey struct {
	route, upstream, server string
	code                    int
}

type reqChild struct {
	count prometheus.Counter
	dur   prometheus.Observer
	// in and out are the server's body byte counters, nil for answers
	// no server gave (server ""), which have no per-server series.
	in, out prometheus.Counter
}

// NewRegistry returns a registry holding the Go runtime and process
// collectors, ready for New. It is a helper rather than part of New so a
// caller embedding the proxy can pass a registry that already has them.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// New creates the proxy's metrics and registers them on reg. It panics if
// a metric of the same name is already registered there, as that is a
// programming error.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RequestsTotal,
			Help: "Requests served, by route, upstream, server and status code. Answers the proxy makes itself (429, 502, 503, 504) have an empty server when no server was reached.",
		}, []string{"route", "upstream", "server", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    RequestDuration,
			Help:    "Time from receiving a request to the end of its response, by route, upstream and server.",
			Buckets: DurationBuckets,
		}, []string{"route", "upstream", "server"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RateLimitedTotal,
			Help: "Requests refused with 429 by a route's rate limit.",
		}, []string{"route"}),
		policyRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: PolicyRejectionsTotal,
			Help: "Requests a route's policy answered itself instead of letting them through (ip_filter 403, basic_auth 401, cors preflight 403, max_body 413, or a custom policy's), by route and policy.",
		}, []string{"route", "policy"}),
		mirrorDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MirrorDroppedTotal,
			Help: "Requests a route's mirror policy did not copy, by route: as many copies as it allows were still under way (a slow mirror upstream), or copies were paused after one failed (a dead one; 1 s, doubling up to 30 s). The client's request is not affected.",
		}, []string{"route"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RetriesTotal,
			Help: "Extra attempts made on another server of the upstream after a failed try.",
		}, []string{"upstream"}),
		discoveryErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: DiscoveryErrorsTotal,
			Help: "DNS lookups of upstream discovery that failed or found no server; the last good set kept serving.",
		}, []string{"upstream"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ConfigReloadsTotal,
			Help: "Config reloads attempted, by result (success or failure).",
		}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: ConfigLastReloadOK,
			Help: "1 if the last config reload succeeded (or none was tried), 0 if it failed and the previous config is still serving.",
		}),
		reloadAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: ConfigLastReloadAt,
			Help: "Unix time of the last successful config load, start-up included.",
		}),
		health: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    HealthCheckDuration,
			Help:    "Duration of active health checks, by upstream, server and result (success or failure).",
			Buckets: healthBuckets,
		}, []string{"upstream", "server", "result"}),
		build: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: BuildInfo,
			Help: "Always 1; the labels say which build is running.",
		}, []string{"version", "commit", "goversion"}),
		storeUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: RateLimitStoreUp,
			Help: "1 while a route's shared (Redis) rate-limit store answers, 0 while a local limiter or the deny policy stands in.",
		}, []string{"route"}),
		storeSwitch: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RateLimitStoreSwitches,
			Help: "Switches of a route's rate limiting between the shared store and its fallback, counted once per transition.",
		}, []string{"route"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RateLimitStoreErrors,
			Help: "Rate-limit decisions of a route made without its shared (Redis) store because the store failed: by the local limiter (on_store_error allow) or as refusals (deny).",
		}, []string{"route"}),
		protoErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ProtocolErrorsTotal,
			Help: "Breaches of HTTP framing by a server that failed no request, such as bytes sent on a kept-alive connection outside any answer; the connection was closed, never reused.",
		}, []string{"upstream", "server"}),
		reqBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ServerRequestBytes,
			Help: "Request body bytes read from clients for requests that went to the server (HAProxy's bytes in), whatever the number of tries.",
		}, []string{"upstream", "server"}),
		resBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ServerResponseBytes,
			Help: "Response body bytes sent to clients from the server's answers (HAProxy's bytes out).",
		}, []string{"upstream", "server"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: PanicsTotal,
			Help: "Panics recovered while serving, wherever they were caught (the proxy's handler, its HTTP/1.1 fast path, net/http); each is also logged at ERROR with its stack.",
		}),
		accepts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: AcceptErrorsTotal,
			Help: "Failures to accept a client connection on the main or admin listener, by reason: emfile (the process's descriptor limit), enfile (the system's), enobufs, enomem, other. Each is retried after a backoff; see docs/operations.md.",
		}, []string{"reason"}),
		grpc: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: GRPCRequestsTotal,
			Help: "gRPC calls served, by route, upstream and the grpc-status that ended them (the server's, or the proxy's own: 14 UNAVAILABLE, 4 DEADLINE_EXCEEDED, 8 RESOURCE_EXHAUSTED); \"none\" when none came, as from a server that broke the stream inside a message.",
		}, []string{"route", "upstream", "grpc_status"}),
		clientProto: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ClientRequestsTotal,
			Help: "Requests received from clients, by the HTTP version they came in (HTTP/1, HTTP/2, HTTP/3), counted as they arrive.",
		}, []string{"proto"}),
		servers: newServerCollector(),
		now:     time.Now,
	}
	for i, p := range ClientProtos {
		m.byProto[i] = m.clientProto.WithLabelValues(p)
	}
	reg.MustRegister(m.requests, m.duration, m.rateLimited, m.policyRejected, m.mirrorDropped, m.retries, m.reloads, m.discoveryErrs,
		m.reloadOK, m.reloadAt, m.health, m.build, m.storeUp, m.storeSwitch, m.storeErrors, m.protoErrors, m.reqBytes, m.resBytes, m.panics, m.accepts, m.grpc, m.clientProto, m.servers)
	// The process has loaded its first config by the time it builds its
	// metrics, so the last load counts as successful until a reload fails.
	m.reloadOK.Set(1)
	m.reloadAt.Set(float64(m.now().UnixNano()) / 1e9)
	// Both reload results exist from the start, so rate() and alerts on
	// failures work before the first failure.
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	for _, r := range AcceptReasons {
		m.accepts.WithLabelValues(r)
	}
	return m
}

// AcceptError counts a failure to accept a connection; reason is one of
// AcceptReasons, anything else counts as other.
func (m *Metrics) AcceptError(reason string) {
	if !slices.Contains(AcceptReasons, reason) {
		reason = "other"
	}
	m.accepts.WithLabelValues(reason).Inc()
}

// RateLimitStore records the state of a route's shared rate-limit store:
// call it once with true when the limiter is built, and on every switch.
func (m *Metrics) RateLimitStore(route string, up, switched bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.storeUp.WithLabelValues(route).Set(v)
	if switched {
		m.storeSwitch.WithLabelValues(route).Inc()
	}
	// Every route with a store shows 0 decisions made locally from the
	// start, so increase() works on the first outage.
	m.storeErrors.WithLabelValues(route)
}

// RateLimitStoreError counts one rate-limit decision of route made without
// its shared store because the store failed. It allocates nothing once the
// route has been seen.
func (m *Metrics) RateLimitStoreError(route string) {
	c, ok := m.storeErr.get(route)
	if !ok {
		c = m.storeErr.add(route, func(r string) prometheus.Counter { return m.storeErrors.WithLabelValues(r) })
	}
	c.Inc()
}

// Observe records one finished request: route, upstream and server are
// names from the config (empty when the request never got that far, such
// as a 429 before any upstream was picked), code the status sent to the
// client and d the time from receiving the request to the end of the
// response. It allocates nothing once the combination has been seen.
func (m *Metrics) Observe(route, upstream, server string, code int, d time.Duration) {
	m.ObserveBytes(route, upstream, server, code, d, 0, 0)
}

// ObserveBytes is Observe with the body bytes of the exchange: in read
// from the client, out sent to it. They are counted per server, as
// HAProxy's bytes in and out are, when server is not empty; a request no
// server answered has no server to count them for.
func (m *Metrics) ObserveBytes(route, upstream, server string, code int, d time.Duration, in, out int64) {
	if code < 100 || code >= len(codeLabels) {
		code = 0 // all out-of-range codes share one series
	}
	k := reqKey{route, upstream, server, code}
	c, ok := m.reqs.get(k)
	if !ok {
		c = m.reqs.add(k, m.newReqChild)
	}
	c.count.Inc()
	c.dur.Observe(d.Seconds())
	if c.in != nil {
		if in > 0 {
			c.in.Add(float64(in))
		}
		if out > 0 {
			c.out.Add(float64(out))
		}
	}
}

func (m *Metrics) newReqChild(k reqKey) reqChild {
	code := otherCode
	if k.code != 0 {
		code = codeLabels[k.code]
	}
	c := reqChild{
		count: m.requests.WithLabelValues(k.route, k.upstream, k.server, code),
		dur:   m.duration.WithLabelValues(k.route, k.upstream, k.server),
	}
	if k.server != "" {
		c.in = m.reqBytes.WithLabelValues(k.upstream, k.server)
		c.out = m.resBytes.WithLabelValues(k.upstream, k.server)
	}
	return c
}

// grpcLabels are the grpc_status values of codes 0-16, and "none" last.
var grpcLabels = func() (l [18]string) {
	for c := range 17 {
		l[c] = strconv.Itoa(c)
	}
	l[17] = "none"
	return l
}()

// ClientRequest counts a request received from a client in HTTP version
// major (r.ProtoMajor); a version outside 1-3, which net/http does not
// produce, counts as HTTP/1.
func (m *Metrics) ClientRequest(major int) {
	if major < 1 || major > len(m.byProto) {
		major = 1
	}
	m.byProto[major-1].Inc()
}

// GRPCRequest counts one gRPC call on route and upstream that ended with
// status code; a code outside 0-16 (no status) counts as "none". It
// allocates nothing once the combination has been seen.
func (m *Metrics) GRPCRequest(route, upstream string, code int) {
	if code < 0 || code > 16 {
		code = 17
	}
	k := grpcKey{route, upstream, code}
	c, ok := m.grpcs.get(k)
	if !ok {
		c = m.grpcs.add(k, func(k grpcKey) prometheus.Counter {
			return m.grpc.WithLabelValues(k.route, k.upstream, grpcLabels[k.code])
		})
	}
	c.Inc()
}

// RateLimited counts a request refused by route's rate limit. The refused
// request is also counted by Observe with its 429 like any other.
func (m *Metrics) RateLimited(route string) {
	c, ok := m.limited.get(route)
	if !ok {
		c = m.limited.add(route, func(r string) prometheus.Counter { return m.rateLimited.WithLabelValues(r) })
	}
	c.Inc()
}

// PolicyRejections returns the counter of requests route's policy answered
// itself, made once when the route's policies are built so that counting
// costs no lookup.
func (m *Metrics) PolicyRejections(route, policy string) prometheus.Counter {
	return m.policyRejected.WithLabelValues(route, policy)
}

// MirrorDropped returns the counter of requests route's mirror policy did
// not copy for want of a free slot, made once when the route's policies
// are built.
func (m *Metrics) MirrorDropped(route string) prometheus.Counter {
	return m.mirrorDropped.WithLabelValues(route)
}

// Retry counts n extra attempts made for one request on upstream. Calling
// it with n = 0 is a no-op, so the caller may pass reqinfo's Retries as is.
func (m *Metrics) Retry(upstream string, n int) {
	if n <= 0 {
		return
	}
	c, ok := m.retried.get(upstream)
	if !ok {
		c = m.retried.add(upstream, func(u string) prometheus.Counter { return m.retries.WithLabelValues(u) })
	}
	c.Add(float64(n))
}

// Reload counts a config reload attempt, whatever triggered it (SIGHUP,
// the admin API, a file change).
func (m *Metrics) Reload(ok bool) {
	if !ok {
		m.reloads.WithLabelValues("failure").Inc()
		m.reloadOK.Set(0)
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.reloadOK.Set(1)
	m.reloadAt.Set(float64(m.now().UnixNano()) / 1e9)
}

// DiscoveryWatched creates upstream's discovery error series at 0, so an
// alert on its rate works before the first failure.
func (m *Metrics) DiscoveryWatched(upstream string) {
	m.discoveryErrs.WithLabelValues(upstream)
}

// DiscoveryError counts a failed or empty discovery lookup of upstream.
// It is off the request path, so it resolves its label on every call.
func (m *Metrics) DiscoveryError(upstream string) {
	m.discoveryErrs.WithLabelValues(upstream).Inc()
}

// Panic counts a panic recovered while serving a request or a connection.
func (m *Metrics) Panic() { m.panics.Inc() }

// HealthCheck records one active health check of server in upstream. It
// is off the request path, so it resolves its labels on every call.
func (m *Metrics) HealthCheck(upstream, server string, ok bool, d time.Duration) {
	result := "failure"
	if ok {
		result = "success"
	}
	m.health.WithLabelValues(upstream, server, result).Observe(d.Seconds())
}

// ProtocolError counts a server's breach of HTTP framing that failed no
// request (see forward.UnsolicitedError). It is rare, so it resolves its
// child each time.
func (m *Metrics) ProtocolError(upstream, server string) {
	m.protoErrors.WithLabelValues(upstream, server).Inc()
}

// SetBuildInfo publishes the running build's version and commit, with the
// Go version it was built with, as proxy_build_info.
func (m *Metrics) SetBuildInfo(version, commit, goVersion string) {
	m.build.Reset()
	m.build.WithLabelValues(version, commit, goVersion).Set(1)
}

// ForgetServer drops every series of server in upstream: call it after a
// reload removed the server, so its frozen counters stop being exported.
func (m *Metrics) ForgetServer(upstream, server string) {
	m.reqs.deleteFunc(func(k reqKey) bool { return k.upstream == upstream && k.server == server })
	l := prometheus.Labels{"upstream": upstream, "server": server}
	m.requests.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.health.DeletePartialMatch(l)
	m.protoErrors.DeletePartialMatch(l)
	m.reqBytes.Delete(l)
	m.resBytes.Delete(l)
}

// cowMap is a copy-on-write map: readers load a pointer and index a plain
// map, with no lock and no allocation (a sync.Map would box the struct key
// into an interface on every lookup). Writers copy the map under mu. That
// is O(n) per new key, which is fine because keys are config names times
// status codes and stop growing after warm-up.
type cowMap[K comparable, V any] struct {
	m atomic.Pointer[map[K]V]
	// mu serialises writers so no addition is lost between copy and store.
	mu sync.Mutex
}

func (c *cowMap[K, V]) get(k K) (V, bool) {
	if p := c.m.Load(); p != nil {
		v, ok := (*p)[k]
		return v, ok
	}
	var zero V
	return zero, false
}

// add returns the value for k, creating it with mk if no other goroutine
// has added it meanwhile.
func (c *cowMap[K, V]) add(k K, mk func(K) V) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	var old map[K]V
	if p := c.m.Load(); p != nil {
		old = *p
	}
	if v, ok := old[k]; ok {
		return v
	}
	next := make(map[K]V, len(old)+1)
	for ok, ov := range old {
		next[ok] = ov
	}
	v := mk(k)
	next[k] = v
	c.m.Store(&next)
	return v
}

func (c *cowMap[K, V]) deleteFunc(drop func(K) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.m.Load()
	if p == nil {
		return
	}
	next := make(map[K]V, len(*p))
	for k, v := range *p {
		if !drop(k) {
			next[k] = v
		}
	}
	c.m.Store(&next)
}
