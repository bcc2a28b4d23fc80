package config

import (
	"fmt"
	"math"
	"net"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Validate checks a config built in code (after SetDefaults) with the same
// rules Parse applies. Its errors carry no line numbers. It returns nil or
// an ErrorList, and records warnings in c.Warnings.
func (c *Config) Validate() error {
	ch := &checker{file: c.File, pos: c.pos}
	ch.config(c)
	c.Warnings = ch.warns.sorted()
	return ch.errs.err()
}

// checker collects validation errors and warnings, locating each through
// the positions recorded while decoding (nil for a config built in code).
type checker struct {
	file string
	pos  *positions
	// bad holds paths that failed to decode; their zero value would only
	// cause a second, misleading error.
	bad map[string]bool
	// files asks for the files the config names (tls) to be read, as the
	// proxy will read them at start.
	files bool
	errs  ErrorList
	warns ErrorList
	// upstreams names the config's upstreams, for the keys that refer to
	// one.
	upstreams []string
}

func (c *checker) errf(path, format string, args ...any) {
	if e := c.note(path, format, args...); e != nil {
		c.errs = append(c.errs, e)
	}
}

// warnf records something worth saying that does not stop the config from
// loading.
func (c *checker) warnf(path, format string, args ...any) {
	if e := c.note(path, format, args...); e != nil {
		e.Warning = true
		c.warns = append(c.warns, e)
	}
}

// note builds the message about path, or returns nil when path already
// has a decoding error.
func (c *checker) note(path, format string, args ...any) *Error {
	for p := path; ; p = parentPath(p) {
		if c.bad[p] {
			return nil
		}
		if p == "" {
			break
		}
	}
	msg := fmt.Sprintf(format, args...)
	if src := c.pos.source(path); src != "" {
		// Set by a flag: name the flag, since the file's line is not
		// what the operator has to change.
		return &Error{Msg: src + ": " + msg, path: path}
	}
	at := c.pos.lookup(path)
	if path != "" {
		msg = path + ": " + msg
	}
	return &Error{File: c.file, Line: at.Line, Col: at.Col, Msg: msg, path: path}
}

// upstreamSections are the top-level keys that belong to the default
// upstream.
var upstreamSections = []string{"load_balancing", "health_checks", "rate_limit", "retries", "timeouts", "circuit_breaker", "protocol"}

func (c *checker) config(cfg *Config) {
	c.listen("listen", cfg.Listen)
	if cfg.TLS != nil {
		c.certSource(cfg)
		if cfg.H2C {
			c.errf("h2c", "has no effect with tls, where HTTP/2 is offered through ALPN; remove one of them")
		}
		c.listenerTLS(cfg.TLS)
		c.tlsFiles(cfg.TLS)
	}
	c.admin(cfg)
	c.edge(cfg)
	c.nonNegative("shutdown_timeout", cfg.ShutdownTimeout)
	c.nonNegative("client.read_header_timeout", cfg.Client.ReadHeaderTimeout)
	c.nonNegative("client.idle_timeout", cfg.Client.IdleTimeout)
	if cfg.Client.MaxHeaderBytes < 1 {
		c.errf("client.max_header_bytes", "must be greater than 0")
	}
	for i, u := range cfg.Client.AllowedUpgrades {
		at := fmt.Sprintf("client.allowed_upgrades[%d]", i)
		switch {
		case strings.EqualFold(u, "h2c"):
			c.errf(at, "h2c is never tunnelled: RFC 9113 §3.1 deprecates that upgrade; set h2c: true to serve HTTP/2 without TLS")
		case !httpguts.ValidHeaderFieldName(u):
			// A field name is a token (RFC 9110 §5.1), as a protocol name is.
			c.errf(at, "%s is not a protocol name (a token such as websocket)", quote(u))
		}
	}

	switch {
	case cfg.HasDefaultUpstream():
		c.upstream("", &cfg.Upstream)
	case len(cfg.Upstreams) == 0:
		c.errf("servers", "required: list at least one server (or define upstreams and routes)")
	default:
		// Named upstreams do not inherit top-level settings; say so rather
		// than silently ignore them.
		for _, k := range upstreamSections {
			if c.pos.isSet(k) {
				c.errf(k, "applies to the top-level servers, and there are none; set it inside each upstream instead")
			}
		}
	}

	for _, name := range sortedKeys(cfg.Upstreams) {
		p := "upstreams." + name
		switch u := cfg.Upstreams[name]; {
		case name == DefaultUpstream:
			c.errf(p, "the name %q is reserved for the top-level servers; choose another", DefaultUpstream)
		case !validName(name):
			c.errf(p, "invalid upstream name %s: use letters, digits, '.', '_' and '-'", quote(name))
		case u == nil:
			c.errf(p+".servers", "required: at least one server")
		default:
			c.upstream(p+".", u)
		}
	}

	c.routes(cfg)

	if !slices.Contains([]string{"debug", "info", "warn", "error"}, cfg.Logging.Level) {
		c.errf("logging.level", "must be debug, info, warn or error, not %s%s", quote(cfg.Logging.Level),
			didYouMean(suggest(cfg.Logging.Level, []string{"debug", "info", "warn", "error"})))
	}
	if cfg.Logging.Format != "text" && cfg.Logging.Format != "json" {
		c.errf("logging.format", "must be text or json, not %s", quote(cfg.Logging.Format))
	}
	if strings.TrimSpace(cfg.Logging.AccessLog) == "" {
		c.errf("logging.access_log", "must be stdout, stderr, off or a file path")
	}
	for i, f := range cfg.Logging.AccessLogFields {
		if !slices.Contains(AccessLogFieldNames, f) {
			c.errf(fmt.Sprintf("logging.access_log_fields[%d]", i), "no field %s%s", quote(f), didYouMean(suggest(f, AccessLogFieldNames)))
		}
	}
	if r := cfg.Logging.AccessLogSample; !(r > 0 && r <= 1) {
		c.errf("logging.access_log_sample", "must be greater than 0 and at most 1, such as 0.1, not %v", r)
	}
	if r := cfg.Tracing.SampleRatio; !(r >= 0 && r <= 1) {
		c.errf("tracing.sample_ratio", "must be between 0 and 1, not %v", r)
	}
}

func (c *checker) admin(cfg *Config) {
	if cfg.Admin.Listen == nil || *cfg.Admin.Listen == "" {
		return // off
	}
	addr := *cfg.Admin.Listen
	if !c.listen("admin.listen", addr) {
		return
	}
	if sameSocket(addr, cfg.Listen) {
		c.errf("admin.listen", "must differ from listen (%s): both would take the same port", quote(cfg.Listen))
	}
	if !isLoopback(addr) && cfg.Admin.Token == "" {
		c.errf("admin.token", "required when admin.listen is not a loopback address: the admin API can reload the config")
	}
}

// upstream checks one upstream; p is "" or "upstreams.NAME.".
func (c *checker) upstream(p string, u *Upstream) {
	if u.Discovery != nil {
		if p == "" {
			c.errf("discovery", "applies to a named upstream: set it as upstreams.NAME.discovery and route to it")
		} else {
			c.discovery(p+"discovery.", u.Discovery)
		}
	} else if len(u.Servers) == 0 {
		c.errf(p+"servers", "required: at least one server")
	}
	c.servers(p, u.Servers)
	c.protocol(p, u)

	lb := u.LoadBalancing
	known := KnownStrategies()
	if !slices.Contains(known, lb.Strategy) {
		hint := didYouMean(suggest(lb.Strategy, known))
		if hint == "" {
			hint = " (one of: " + strings.Join(known, ", ") + ")"
		}
		c.errf(p+"load_balancing.strategy", "unknown strategy %s%s", quote(lb.Strategy), hint)
	}
	// Built-in strategies other than consistent_hash ignore these two.
	// Setting them is worth a warning, not an error: switching strategy
	// for a test must not force deleting keys. Custom strategies may use
	// them.
	builtin, custom, hashKey := strategyTraits(lb.Strategy)
	onlyHash := builtin && !custom && !hashKey
	if lb.HashKey != "" {
		if msg := checkKey(lb.HashKey, "ip", "uri", "header", "cookie"); msg != "" {
			c.errf(p+"load_balancing.hash_key", "%s", msg)
		} else if onlyHash {
			c.warnf(p+"load_balancing.hash_key", "ignored: only strategy consistent_hash uses it, not %s", quote(lb.Strategy))
		}
	}
	if !(lb.BoundedLoad > 0) || math.IsInf(lb.BoundedLoad, 0) {
		c.errf(p+"load_balancing.bounded_load", "must be greater than 0, such as 0.25")
	} else if c.pos.isSet(p+"load_balancing.bounded_load") && onlyHash {
		c.warnf(p+"load_balancing.bounded_load", "ignored: only strategy consistent_hash uses it, not %s", quote(lb.Strategy))
	}

	if v, ok := lb.Options.Value.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			c.errf(p+"load_balancing.options", "%s", err.Error())
		}
	}
	c.health(p+"health_checks.", u.HealthChecks)
	if u.RateLimit != nil {
		c.rateLimit(p+"rate_limit.", u.RateLimit)
	}

	if a := u.Retries.Attempts; a < 0 || a > 10 {
		c.errf(p+"retries.attempts", "must be between 0 and 10, not %d", a)
	}
	if b := u.Retries.Budget; (u.Retries.Attempts > 0 || b != 0) && !(b > 0 && b <= 1) {
		c.errf(p+"retries.budget", "must be greater than 0 and at most 1, such as 0.2, not %v", b)
	}

	if m := u.Retries.MinPerSecond; m < 0 {
		c.errf(p+"retries.min_per_second", "must be 0 or more, not %d", m)
	}
	for i, code := range u.Retries.OnStatus {
		if code < 500 || code > 599 {
			c.errf(fmt.Sprintf("%sretries.on_status[%d]", p, i), "must be a 5xx status, not %d", code)
		}
	}
	if u.Retries.MaxBodyBytes < 0 {
		c.errf(p+"retries.max_body_bytes", "must be 0 or more")
	}
	for i, name := range u.Retries.RetryOn {
		if _, ok := GRPCRetryOn[name]; !ok {
			c.errf(fmt.Sprintf("%sretries.retry_on[%d]", p, i), "no gRPC status %s to retry on, only unavailable%s", quote(name), didYouMean(suggest(name, []string{"unavailable"})))
		}
	}
	if len(u.Retries.RetryOn) > 0 && u.Retries.Attempts == 0 {
		c.errf(p+"retries.retry_on", "needs retries.attempts of 1 or more")
	}
	c.nonNegative(p+"retries.per_try_timeout", u.Retries.PerTryTimeout)
	c.nonNegative(p+"retries.backoff", u.Retries.Backoff)

	c.nonNegative(p+"timeouts.connect", u.Timeouts.Connect)
	c.nonNegative(p+"timeouts.response_header", u.Timeouts.ResponseHeader)
	c.nonNegative(p+"timeouts.idle_connection", u.Timeouts.IdleConnection)

	if cb := u.CircuitBreaker; cb != nil {
		c.atLeastOne(p+"circuit_breaker.consecutive_failures", cb.ConsecutiveFailures)
		c.positive(p+"circuit_breaker.open_time", cb.OpenTime)
		if r := cb.FailureRatio; r < 0 || r > 1 || math.IsNaN(r) {
			c.errf(p+"circuit_breaker.failure_ratio", "must be between 0 (off) and 1, such as 0.5, not %v", r)
		}
		c.positive(p+"circuit_breaker.window", cb.Window)
		c.atLeastOne(p+"circuit_breaker.min_requests", cb.MinRequests)
		c.atLeastOne(p+"circuit_breaker.half_open_requests", cb.HalfOpenRequests)
	}
}

func (c *checker) servers(p string, servers []Server) {
	urls := map[string]int{}
	names := map[string]int{}
	primaries := 0
	for i, s := range servers {
		sp := fmt.Sprintf("%sservers[%d]", p, i)
		if !s.Backup {
			primaries++
		}
		if msg := checkServerURL(s.URL); msg != "" {
			c.errf(sp+".url", "%s", msg)
		} else if first, dup := urls[normalizeURL(s.URL)]; dup {
			c.errf(sp+".url", "duplicate of servers[%d]", first)
			continue // its default name clashes too; one error is enough
		} else {
			urls[normalizeURL(s.URL)] = i
		}
		if first, dup := names[s.Name]; dup {
			c.errf(sp+".name", "duplicate name %s, also used by servers[%d]", quote(s.Name), first)
		} else {
			names[s.Name] = i
		}
		if s.Weight < 1 {
			c.errf(sp+".weight", "must be an integer ≥ 1, not %d", s.Weight)
		}
		if s.MaxConnections < 0 {
			c.errf(sp+".max_connections", "must be ≥ 0 (0 means unlimited), not %d", s.MaxConnections)
		}
		c.nonNegative(sp+".slow_start", s.SlowStart)
		c.serverTLS(sp, s)
	}
	c.sameServerTLS(p, servers)
	if len(servers) > 0 && primaries == 0 {
		c.errf(p+"servers", "every server is a backup; at least one must not be")
	}
}

// discovery checks an upstream's discovery; p ends in "discovery.".
func (c *checker) discovery(p string, d *Discovery) {
	dns := d.DNS
	if dns == nil {
		c.errf(p+"dns", "required: discovery has one source, dns")
		return
	}
	p += "dns."
	switch {
	case dns.Name == "" && dns.SRV == "":
		c.errf(p+"name", "required: the name to look up (or srv: the SRV record)")
	case dns.Name != "" && dns.SRV != "":
		c.errf(p+"srv", "set name or srv, not both")
	case dns.Name != "" && (dns.Port < 1 || dns.Port > 65535):
		c.errf(p+"port", "required with name: the servers' port, 1 to 65535, not %d", dns.Port)
	case dns.SRV != "" && dns.Port != 0:
		c.errf(p+"port", "not used with srv: the SRV record gives each server's port")
	}
	if dns.Scheme != "http" && dns.Scheme != "https" {
		c.errf(p+"scheme", "must be http or https, not %s", quote(dns.Scheme))
	}
	c.positive(p+"refresh", dns.Refresh)
	c.nonNegative(p+"slow_start", dns.SlowStart)
	if dns.MaxConnections < 0 {
		c.errf(p+"max_connections", "must be ≥ 0 (0 means unlimited), not %d", dns.MaxConnections)
	}
	if dns.Resolver != "" {
		if _, port, err := net.SplitHostPort(dns.Resolver); err != nil || port == "" {
			c.errf(p+"resolver", "must be host:port, such as 127.0.0.1:53, not %s", quote(dns.Resolver))
		}
	}
}

func (c *checker) health(p string, h HealthChecks) {
	if c.positive(p+"interval", h.Interval) && c.positive(p+"timeout", h.Timeout) && h.Timeout > h.Interval {
		c.errf(p+"timeout", "must not be longer than interval (%s), or probes would overlap", h.Interval)
	}
	c.positive(p+"fast_interval", h.FastInterval)
	if !strings.HasPrefix(h.Path, "/") {
		c.errf(p+"path", "must start with /, not %s", quote(h.Path))
	}
	if _, err := ParseStatusRanges(h.ExpectedStatus); err != nil {
		c.errf(p+"expected_status", "%s", err.Error())
	}
	c.atLeastOne(p+"healthy_threshold", h.HealthyThreshold)
	c.atLeastOne(p+"unhealthy_threshold", h.UnhealthyThreshold)
	if ps := h.Passive; ps != nil {
		pp := p + "passive."
		c.atLeastOne(pp+"consecutive_failures", ps.ConsecutiveFailures)
		if c.positive(pp+"ejection_time", ps.EjectionTime) && ps.MaxEjectionTime < ps.EjectionTime {
			c.errf(pp+"max_ejection_time", "must not be shorter than ejection_time (%s)", ps.EjectionTime)
		}
		if m := ps.MaxEjectionPercent; m < 1 || m > 100 {
			c.errf(pp+"max_ejection_percent", "must be between 1 and 100, not %d", m)
		}
	}
}

// rateLimit checks a rate_limit section; p ends in "rate_limit.".
func (c *checker) rateLimit(p string, rl *RateLimit) {
	if r := rl.RequestsPerSecond; !(r > 0) || math.IsInf(r, 0) {
		c.errf(p+"requests_per_second", "required: a number greater than 0")
	}
	c.atLeastOne(p+"burst", rl.Burst)
	if kind, _ := SplitKey(rl.Key); kind == "cookie" || kind == "uri" {
		c.errf(p+"key", "must be ip or header:NAME, not %s", quote(rl.Key))
	} else if msg := checkKey(rl.Key, "ip", "header"); msg != "" {
		c.errf(p+"key", "%s", msg)
	}
	switch rl.Store {
	case "memory":
	case "redis":
		c.redis(p+"redis.", &rl.Redis)
	default:
		c.errf(p+"store", "must be memory or redis, not %s", quote(rl.Store))
	}
	if rl.OnStoreError != "allow" && rl.OnStoreError != "deny" {
		c.errf(p+"on_store_error", "must be allow or deny, not %s", quote(rl.OnStoreError))
	}
	for i, tp := range rl.TrustedProxies {
		if !validIPOrCIDR(tp) {
			c.errf(fmt.Sprintf("%strusted_proxies[%d]", p, i), "%s is not an IP address or CIDR such as 10.0.0.0/8", quote(tp))
		}
	}
}

func (c *checker) routes(cfg *Config) {
	names := map[string]int{}
	upstreams := cfg.UpstreamNames()
	c.upstreams = upstreams
	for i, r := range cfg.Routes {
		p := fmt.Sprintf("routes[%d].", i)
		if first, dup := names[r.Name]; dup {
			c.errf(p+"name", "duplicate route name %s, also used by routes[%d]", quote(r.Name), first)
		} else {
			names[r.Name] = i
		}
		if r.Match.Host != "" && !validHostPattern(r.Match.Host) {
			c.errf(p+"match.host", "%s is not a host name or a wildcard such as *.example.com", quote(r.Match.Host))
		}
		if r.Match.PathPrefix != "" && !strings.HasPrefix(r.Match.PathPrefix, "/") {
			c.errf(p+"match.path_prefix", "must start with /, not %s", quote(r.Match.PathPrefix))
		}
		if r.StripPrefix && r.Match.PathPrefix == "" {
			c.errf(p+"strip_prefix", "needs match.path_prefix, the prefix to strip")
		}
		switch {
		case r.Upstream == "":
			c.errf(p+"upstream", "required: there are no top-level servers to send to by default")
		case r.Upstream == DefaultUpstream && !cfg.HasDefaultUpstream():
			c.errf(p+"upstream", "%q names the top-level servers, and there are none", DefaultUpstream)
		case !slices.Contains(upstreams, r.Upstream):
			c.errf(p+"upstream", "no upstream named %s%s", quote(r.Upstream), didYouMean(suggest(r.Upstream, upstreams)))
		}
		if r.RateLimit != nil {
			c.rateLimit(p+"rate_limit.", r.RateLimit)
		}
		c.policies(p, r.Policies)
		if fb := r.Fallback; fb != nil {
			switch {
			case fb.Upstream != "" && (fb.Status != 0 || fb.Body != "" || len(fb.Headers) > 0):
				c.errf(p+"fallback", "either upstream, or status, body and headers: not both")
			case fb.Upstream != "" && !slices.Contains(upstreams, fb.Upstream):
				c.errf(p+"fallback.upstream", "no upstream named %s%s", quote(fb.Upstream), didYouMean(suggest(fb.Upstream, upstreams)))
			case fb.Upstream == "" && (fb.Status < 200 || fb.Status > 599):
				c.errf(p+"fallback.status", "must be an HTTP status from 200 to 599, not %d", fb.Status)
			}
		}
	}
}

func (c *checker) atLeastOne(path string, n int) {
	if n < 1 {
		c.errf(path, "must be an integer ≥ 1, not %d", n)
	}
}

// positive reports whether d > 0, recording an error if not.
func (c *checker) positive(path string, d Duration) bool {
	if d <= 0 {
		c.errf(path, "must be a duration greater than 0, such as \"10s\"")
		return false
	}
	return true
}

// nonNegative catches negative durations set in code; the YAML decoder
// already rejects them.
func (c *checker) nonNegative(path string, d Duration) {
	if d < 0 {
		c.errf(path, "must not be negative")
	}
}
