package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"time"
)

// Defaults for settings left out of the file. docs/configuration.md lists
// the same values; keep them in step.
const (
	DefaultListen            = ":8080"
	DefaultAdminListen       = "127.0.0.1:9901"
	DefaultShutdownTimeout   = Duration(30 * time.Second)
	DefaultReadHeaderTimeout = Duration(10 * time.Second)
	DefaultIdleTimeout       = Duration(120 * time.Second)
	DefaultMaxHeaderBytes    = 64 * KiB
	// FallbackAdminListen is the admin's default when listen takes
	// DefaultAdminListen's port.
	FallbackAdminListen = "127.0.0.1:9902"
	// DefaultHealthInterval and DefaultHealthTimeout apply to whichever of
	// the two is left out, bent so as never to clash with the other: an
	// unset timeout is at most the interval, an unset interval at least
	// the timeout.
	DefaultHealthInterval = Duration(10 * time.Second)
	DefaultHealthTimeout  = Duration(2 * time.Second)
	// DefaultFastInterval is the fast_interval of the default interval.
	// An unset fast_interval is a tenth of the interval, between
	// MinDefaultFastInterval and DefaultFastInterval, and never more than
	// the interval, so it cannot clash with an interval written.
	DefaultFastInterval    = Duration(time.Second)
	MinDefaultFastInterval = Duration(100 * time.Millisecond)
	// Passive ejection is on by default, with settings that eject only a
	// server that plainly cannot be reached, and briefly: nginx marks a
	// server failed for 10s after one failure; three in a row are asked
	// here, since a retry already hides each from the client.
	// DefaultEjectionTime and DefaultMaxEjectionTime are bent as interval
	// and timeout are: an unset ejection_time is at most
	// max_ejection_time, an unset max_ejection_time at least
	// ejection_time.
	DefaultConsecutiveFailures = 3
	DefaultEjectionTime        = Duration(10 * time.Second)
	DefaultMaxEjectionTime     = Duration(60 * time.Second)
	DefaultMaxEjectionPercent  = 50
	// DefaultUpgrade is the one protocol client.allowed_upgrades lets
	// through when the key is left out.
	DefaultUpgrade = "websocket"
	// FastPathEnv names the environment variable that, set to "off",
	// turns client.fast_path off wherever the config leaves it unset:
	// the whole test suite runs once so (make test), and an operator can
	// take the fast path out of a suspect deployment without an edit.
	FastPathEnv = "PROXY_FAST_PATH"
)

// SetDefaults fills in every setting that is still its zero value. It is
// for configs built in code (such as the -to quick proxy); Parse already
// applies defaults, and only to keys absent from the file, so that an
// explicit 0 is kept and validated rather than replaced. Call Validate
// afterwards.
func (c *Config) SetDefaults() { applyDefaults(c, nil) }

// defaulter applies a default when a setting is zero and was not written
// in the file. With no positions (a config built in code), zero alone
// decides.
type defaulter struct{ pos *positions }

func (d defaulter) unset(zero bool, path string) bool { return zero && !d.pos.isSet(path) }

func applyDefaults(c *Config, pos *positions) {
	d := defaulter{pos}
	if d.unset(c.Listen == "", "listen") {
		c.Listen = DefaultListen
	}
	if c.Admin.Listen == nil {
		// nil means absent; an explicit "" (admin off) is kept. A main
		// listener on the admin's default port moves the admin one port
		// up rather than make the file invalid over a key it never set.
		addr := DefaultAdminListen
		if sameSocket(addr, c.Listen) {
			addr = FallbackAdminListen
		}
		c.Admin.Listen = &addr
	}
	if d.unset(c.ShutdownTimeout == 0, "shutdown_timeout") {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if d.unset(c.Client.ReadHeaderTimeout == 0, "client.read_header_timeout") {
		c.Client.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if d.unset(c.Client.IdleTimeout == 0, "client.idle_timeout") {
		c.Client.IdleTimeout = DefaultIdleTimeout
	}
	if d.unset(c.Client.MaxHeaderBytes == 0, "client.max_header_bytes") {
		c.Client.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.Client.FastPath == nil {
		on := os.Getenv(FastPathEnv) != "off"
		c.Client.FastPath = &on
	}
	if c.Client.DirectLane == nil {
		on := true
		c.Client.DirectLane = &on
	}
	if d.unset(c.Client.AllowedUpgrades == nil, "client.allowed_upgrades") {
		c.Client.AllowedUpgrades = []string{DefaultUpgrade}
	}

	// The top-level upstream sections mean nothing without top-level
	// servers, so they stay zero then rather than look configured.
	if c.HasDefaultUpstream() {
		d.upstream(&c.Upstream, "")
	}
	for name, u := range c.Upstreams {
		if u != nil {
			d.upstream(u, "upstreams."+name+".")
		}
	}

	routeNames := map[string]bool{}
	for _, r := range c.Routes {
		routeNames[r.Name] = true
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		p := fmt.Sprintf("routes[%d].", i)
		if d.unset(r.Name == "", p+"name") {
			// Metrics and the dashboard label requests by route, so every
			// route needs a name; its match reads better than a number.
			r.Name = defaultRouteName(r.Match, i, routeNames)
			routeNames[r.Name] = true
		}
		if d.unset(r.Upstream == "", p+"upstream") && c.HasDefaultUpstream() {
			r.Upstream = DefaultUpstream
		}
		if r.RateLimit != nil {
			d.rateLimit(r.RateLimit, p+"rate_limit.")
		}
		if fb := r.Fallback; fb != nil && fb.Upstream == "" && d.unset(fb.Status == 0, p+"fallback.status") {
			fb.Status = 503
		}
	}

	if d.unset(c.Logging.Level == "", "logging.level") {
		c.Logging.Level = "info"
	}
	if d.unset(c.Logging.Format == "", "logging.format") {
		c.Logging.Format = "text"
	}
	if d.unset(c.Logging.AccessLogSample == 0, "logging.access_log_sample") {
		c.Logging.AccessLogSample = 1
	}
	if d.unset(c.Logging.AccessLog == "", "logging.access_log") {
		c.Logging.AccessLog = "stdout"
	}
	if d.unset(c.Tracing.SampleRatio == 0, "tracing.sample_ratio") {
		c.Tracing.SampleRatio = 0.1
	}
}

// upstream applies the per-upstream defaults; p is the path prefix, "" for
// the top-level upstream or "upstreams.NAME.".
func (d defaulter) upstream(u *Upstream, p string) {
	// Names given in the file first, so a default name never takes one.
	taken := map[string]bool{}
	for _, s := range u.Servers {
		if s.Name != "" {
			taken[s.Name] = true
		}
	}
	for i := range u.Servers {
		s := &u.Servers[i]
		sp := fmt.Sprintf("%sservers[%d].", p, i)
		if d.unset(s.Weight == 0, sp+"weight") {
			s.Weight = 1
		}
		if d.unset(s.Name == "", sp+"name") {
			s.Name = defaultServerName(s.URL, taken)
			taken[s.Name] = true
		}
	}

	if dc := u.Discovery; dc != nil && dc.DNS != nil {
		dp := p + "discovery.dns."
		if d.unset(dc.DNS.Scheme == "", dp+"scheme") {
			dc.DNS.Scheme = "http"
		}
		if d.unset(dc.DNS.Refresh == 0, dp+"refresh") {
			dc.DNS.Refresh = Duration(10 * time.Second)
		}
		if d.unset(dc.DNS.SlowStart == 0, dp+"slow_start") {
			dc.DNS.SlowStart = Duration(10 * time.Second)
		}
	}
	if d.unset(u.Protocol == "", p+"protocol") {
		u.Protocol = "auto"
	}

	lb := &u.LoadBalancing
	if d.unset(lb.Strategy == "", p+"load_balancing.strategy") {
		lb.Strategy = "round_robin"
	}
	if d.unset(lb.HashKey == "", p+"load_balancing.hash_key") && lb.Strategy == "consistent_hash" {
		lb.HashKey = "ip"
	}
	if d.unset(lb.BoundedLoad == 0, p+"load_balancing.bounded_load") {
		lb.BoundedLoad = 0.25
	}

	// A default gives way to what the file says: an interval of 200ms
	// shortens the default timeout rather than clash with it, and a long
	// timeout lengthens the default interval.
	hc := &u.HealthChecks
	hp := p + "health_checks."
	if d.unset(hc.Interval == 0, hp+"interval") {
		hc.Interval = max(DefaultHealthInterval, hc.Timeout)
	}
	if d.unset(hc.Timeout == 0, hp+"timeout") {
		hc.Timeout = min(DefaultHealthTimeout, hc.Interval)
		if hc.Timeout <= 0 {
			// The interval is invalid; keep the timeout's own default
			// so only the interval is reported.
			hc.Timeout = DefaultHealthTimeout
		}
	}
	if d.unset(hc.FastInterval == 0, hp+"fast_interval") {
		hc.FastInterval = min(max(hc.Interval/10, MinDefaultFastInterval), DefaultFastInterval, hc.Interval)
		if hc.FastInterval <= 0 {
			// The interval is invalid; only it is reported.
			hc.FastInterval = DefaultFastInterval
		}
	}
	if d.unset(hc.Path == "", hp+"path") {
		hc.Path = "/"
	}
	if d.unset(hc.ExpectedStatus == "", hp+"expected_status") {
		hc.ExpectedStatus = "200-399"
	}
	if d.unset(hc.HealthyThreshold == 0, hp+"healthy_threshold") {
		hc.HealthyThreshold = 2
	}
	if d.unset(hc.UnhealthyThreshold == 0, hp+"unhealthy_threshold") {
		hc.UnhealthyThreshold = 3
	}
	if hc.Passive == nil {
		hc.Passive = &Passive{} // on by default: see DefaultEjectionTime
	}
	if ps := hc.Passive; ps != nil {
		pp := hp + "passive."
		if ps.Enabled == nil {
			on := true
			ps.Enabled = &on
		}
		if d.unset(ps.ConsecutiveFailures == 0, pp+"consecutive_failures") {
			ps.ConsecutiveFailures = DefaultConsecutiveFailures
		}
		if d.unset(ps.EjectionTime == 0, pp+"ejection_time") {
			ps.EjectionTime = DefaultEjectionTime
			if ps.MaxEjectionTime > 0 {
				ps.EjectionTime = min(DefaultEjectionTime, ps.MaxEjectionTime)
			}
		}
		if d.unset(ps.MaxEjectionTime == 0, pp+"max_ejection_time") {
			ps.MaxEjectionTime = max(DefaultMaxEjectionTime, ps.EjectionTime)
		}
		if d.unset(ps.MaxEjectionPercent == 0, pp+"max_ejection_percent") {
			ps.MaxEjectionPercent = DefaultMaxEjectionPercent
		}
	}

	if u.RateLimit != nil {
		d.rateLimit(u.RateLimit, p+"rate_limit.")
	}
	r := &u.Retries
	if d.unset(r.Budget == 0, p+"retries.budget") && r.Attempts > 0 {
		r.Budget = 0.2
	}
	if d.unset(r.MinPerSecond == 0, p+"retries.min_per_second") {
		r.MinPerSecond = 3
	}
	if d.unset(r.OnStatus == nil, p+"retries.on_status") {
		r.OnStatus = []int{502, 503, 504}
	}
	if d.unset(r.MaxBodyBytes == 0, p+"retries.max_body_bytes") {
		r.MaxBodyBytes = 64 * KiB
	}
	if d.unset(r.Backoff == 0, p+"retries.backoff") {
		r.Backoff = Duration(25 * time.Millisecond)
	}

	t := &u.Timeouts
	if d.unset(t.Connect == 0, p+"timeouts.connect") {
		t.Connect = Duration(5 * time.Second)
	}
	if d.unset(t.ResponseHeader == 0, p+"timeouts.response_header") {
		t.ResponseHeader = Duration(30 * time.Second)
	}
	if d.unset(t.IdleConnection == 0, p+"timeouts.idle_connection") {
		t.IdleConnection = Duration(90 * time.Second)
	}

	if cb := u.CircuitBreaker; cb != nil {
		if d.unset(cb.ConsecutiveFailures == 0, p+"circuit_breaker.consecutive_failures") {
			cb.ConsecutiveFailures = 5
		}
		if d.unset(cb.OpenTime == 0, p+"circuit_breaker.open_time") {
			cb.OpenTime = Duration(30 * time.Second)
		}
		if d.unset(cb.Window == 0, p+"circuit_breaker.window") {
			cb.Window = Duration(10 * time.Second)
		}
		if d.unset(cb.MinRequests == 0, p+"circuit_breaker.min_requests") {
			cb.MinRequests = 20
		}
		if d.unset(cb.HalfOpenRequests == 0, p+"circuit_breaker.half_open_requests") {
			cb.HalfOpenRequests = 1
		}
	}
}

// rateLimit applies rate-limit defaults; p ends in "rate_limit.".
func (d defaulter) rateLimit(rl *RateLimit, p string) {
	if d.unset(rl.Burst == 0, p+"burst") {
		// One second's worth of requests, and at least one request.
		rl.Burst = 1
		if rl.RequestsPerSecond > 1 && rl.RequestsPerSecond < math.MaxInt32 {
			rl.Burst = int(math.Ceil(rl.RequestsPerSecond))
		}
	}
	if d.unset(rl.Key == "", p+"key") {
		rl.Key = "ip"
	}
	if d.unset(rl.Store == "", p+"store") {
		rl.Store = "memory"
	}
	if d.unset(rl.OnStoreError == "", p+"on_store_error") {
		rl.OnStoreError = "allow"
	}
	if d.unset(rl.Redis.Address == "" && len(rl.Redis.Addresses) == 0, p+"redis.address") && !d.pos.isSet(p+"redis.addresses") {
		rl.Redis.Address = "127.0.0.1:6379"
	}
	if d.unset(rl.Redis.KeyPrefix == "", p+"redis.key_prefix") {
		rl.Redis.KeyPrefix = "proxy:rl:"
	}
	if d.unset(rl.Redis.Timeout == 0, p+"redis.timeout") {
		rl.Redis.Timeout = Duration(100 * time.Millisecond)
	}
}

// defaultServerName names a server by its host:port, which is what an
// operator sees in dashboards and metrics. If two servers share a host and
// port (different base paths), the later one is named by its full URL.
func defaultServerName(raw string, taken map[string]bool) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw // invalid; validation reports the URL itself
	}
	name := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		name = net.JoinHostPort(u.Hostname(), port)
	}
	if taken[name] {
		name = raw
	}
	// A name written in the file may be this URL too; number the default
	// rather than clash with it.
	for n := 2; taken[name]; n++ {
		name = fmt.Sprintf("%s#%d", raw, n)
	}
	return name
}

// defaultRouteName names a route after what it matches ("api.example.com/v1"),
// falling back to its position ("route2") when it matches everything or
// the name is taken.
func defaultRouteName(m Match, i int, taken map[string]bool) string {
	name := m.Host + m.PathPrefix
	if name == "" || taken[name] {
		name = fmt.Sprintf("route%d", i)
	}
	for n := 2; taken[name]; n++ {
		name = fmt.Sprintf("route%d_%d", i, n)
	}
	return name
}
