package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestDefaultsNeverConflict lists every pair of settings that validation
// compares. A default must give way to what the file says: only two values
// the operator wrote may be reported as clashing, and then the message is
// about a key they wrote.
func TestDefaultsNeverConflict(t *testing.T) {
	sec := func(n float64) Duration { return Duration(n * float64(time.Second)) }
	tests := []struct {
		name  string
		src   string
		check func(c *Config) (got, want any)
		// err is the one error expected when both keys were written.
		err string
	}{
		// health_checks.timeout ≤ health_checks.interval.
		{name: "short interval shortens the default timeout", src: one + "health_checks: {interval: 200ms}\n",
			check: func(c *Config) (any, any) { return c.HealthChecks.Timeout, sec(0.2) }},
		{name: "interval of 1s", src: one + "health_checks: {interval: 1s}\n",
			check: func(c *Config) (any, any) { return c.HealthChecks.Timeout, sec(1) }},
		{name: "long interval keeps the default timeout", src: one + "health_checks: {interval: 1m}\n",
			check: func(c *Config) (any, any) { return c.HealthChecks.Timeout, DefaultHealthTimeout }},
		{name: "long timeout lengthens the default interval", src: one + "health_checks: {timeout: 15s}\n",
			check: func(c *Config) (any, any) { return c.HealthChecks.Interval, sec(15) }},
		{name: "short timeout keeps the default interval", src: one + "health_checks: {timeout: 1s}\n",
			check: func(c *Config) (any, any) { return c.HealthChecks.Interval, DefaultHealthInterval }},
		{name: "named upstream's short interval", src: "upstreams: {a: {servers: [{url: http://a}], health_checks: {interval: 500ms}}}\nroutes: [{upstream: a}]\n",
			check: func(c *Config) (any, any) { return c.Upstreams["a"].HealthChecks.Timeout, sec(0.5) }},
		{name: "both written and clashing", src: one + "health_checks: {interval: 200ms, timeout: 1s}\n",
			err: `t.yaml:2:43: health_checks.timeout: must not be longer than interval (200ms), or probes would overlap`},

		// health_checks.fast_interval ≤ health_checks.interval: an unset
		// one bends; one written longer is no error, it turns the fast
		// phase off.
		{name: "default interval's fast interval", src: one,
			check: func(c *Config) (any, any) { return c.HealthChecks.FastInterval, DefaultFastInterval }},
		{name: "short interval shortens the default fast interval", src: one + "health_checks: {interval: 2s}\n",
			check: func(c *Config) (any, any) { return c.HealthChecks.FastInterval, sec(0.2) }},
		{name: "the default fast interval's floor", src: one + "health_checks: {interval: 500ms}\n",
			check: func(c *Config) (any, any) { return c.HealthChecks.FastInterval, MinDefaultFastInterval }},
		{name: "the default fast interval is never above the interval", src: one + "health_checks: {interval: 50ms}\n",
			check: func(c *Config) (any, any) { return c.HealthChecks.FastInterval, sec(0.05) }},
		{name: "long interval keeps the default fast interval", src: one + "health_checks: {interval: 1h}\n",
			check: func(c *Config) (any, any) { return c.HealthChecks.FastInterval, DefaultFastInterval }},
		{name: "fast interval written above the default interval", src: one + "health_checks: {fast_interval: 30s}\n",
			check: func(c *Config) (any, any) {
				return []Duration{c.HealthChecks.Interval, c.HealthChecks.FastInterval}, []Duration{DefaultHealthInterval, sec(30)}
			}},
		{name: "fast interval written with a long timeout", src: one + "health_checks: {fast_interval: 500ms, timeout: 5s}\n",
			check: func(c *Config) (any, any) { return c.HealthChecks.Interval, DefaultHealthInterval }},

		// passive.ejection_time ≤ passive.max_ejection_time.
		{name: "long ejection lengthens the default maximum", src: one + "health_checks: {passive: {ejection_time: 10m}}\n",
			check: func(c *Config) (any, any) { return c.HealthChecks.Passive.MaxEjectionTime, sec(600) }},
		{name: "short maximum shortens the default ejection", src: one + "health_checks: {passive: {max_ejection_time: 10s}}\n",
			check: func(c *Config) (any, any) { return c.HealthChecks.Passive.EjectionTime, sec(10) }},
		{name: "ejection defaults together", src: one + "health_checks: {passive: {}}\n",
			check: func(c *Config) (any, any) {
				p := c.HealthChecks.Passive
				return []Duration{p.EjectionTime, p.MaxEjectionTime}, []Duration{DefaultEjectionTime, DefaultMaxEjectionTime}
			}},
		{name: "passive on with nothing written", src: one,
			check: func(c *Config) (any, any) {
				p := c.HealthChecks.Passive
				return []any{*p.Enabled, p.ConsecutiveFailures, p.EjectionTime, p.MaxEjectionTime, p.MaxEjectionPercent},
					[]any{true, DefaultConsecutiveFailures, DefaultEjectionTime, DefaultMaxEjectionTime, DefaultMaxEjectionPercent}
			}},
		{name: "passive turned off", src: one + "health_checks: {passive: {enabled: false}}\n",
			check: func(c *Config) (any, any) { return *c.HealthChecks.Passive.Enabled, false }},
		{name: "ejection both written and clashing", src: one + "health_checks: {passive: {ejection_time: 1m, max_ejection_time: 10s}}\n",
			err: `t.yaml:2:65: health_checks.passive.max_ejection_time: must not be shorter than ejection_time (1m0s)`},

		// admin.listen must not take listen's socket.
		{name: "listen on the admin's default address moves the admin", src: one + "listen: \"127.0.0.1:9901\"\n",
			check: func(c *Config) (any, any) { return *c.Admin.Listen, FallbackAdminListen }},
		{name: "listen on the admin's default port everywhere", src: one + "listen: \":9901\"\n",
			check: func(c *Config) (any, any) { return *c.Admin.Listen, FallbackAdminListen }},
		{name: "listen elsewhere keeps the admin default", src: one + "listen: \"127.0.0.1:9902\"\n",
			check: func(c *Config) (any, any) { return *c.Admin.Listen, DefaultAdminListen }},
		{name: "admin written on listen's port", src: one + "listen: \":9901\"\nadmin: {listen: \"127.0.0.1:9901\"}\n",
			err: `t.yaml:3:17: admin.listen: must differ from listen (":9901"): both would take the same port`},

		// Server names are unique: a default never takes a written one.
		{name: "default server name taken by a written one", src: "servers:\n  - url: http://127.0.0.1:9001\n  - {url: http://127.0.0.1:9002, name: \"127.0.0.1:9001\"}\n  - {url: http://127.0.0.1:9003, name: \"http://127.0.0.1:9001\"}\n",
			check: func(c *Config) (any, any) {
				return []string{c.Servers[0].Name, c.Servers[1].Name, c.Servers[2].Name},
					[]string{"http://127.0.0.1:9001#2", "127.0.0.1:9001", "http://127.0.0.1:9001"}
			}},
		// Route names likewise.
		{name: "default route name taken by a written one", src: one + "routes: [{match: {path_prefix: /a}}, {name: /a, match: {path_prefix: /b}}]\n",
			check: func(c *Config) (any, any) {
				return []string{c.Routes[0].Name, c.Routes[1].Name}, []string{"route0", "/a"}
			}},

		// Defaults among themselves: every section that has defaults,
		// turned on with nothing else written, is valid and says nothing.
		{name: "every defaulted section at once", src: one + "health_checks: {passive: {}}\ncircuit_breaker: {}\nrate_limit: {requests_per_second: 0.5}\nretries: {attempts: 2}\nroutes: [{fallback: {}}]\n",
			check: func(c *Config) (any, any) { return c.Warnings, ErrorList(nil) }},
		{name: "consistent_hash with its defaults", src: one + "load_balancing: {strategy: consistent_hash}\n",
			check: func(c *Config) (any, any) {
				return []any{c.LoadBalancing.HashKey, c.LoadBalancing.BoundedLoad, len(c.Warnings)}, []any{"ip", 0.25, 0}
			}},
		{name: "bounded_load's default is no warning under round_robin", src: one,
			check: func(c *Config) (any, any) { return len(c.Warnings), 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseEnv(t, tc.src, nil)
			if tc.err != "" {
				if diff := cmp.Diff([]string{tc.err}, errLines(t, err)); diff != "" {
					t.Errorf("errors (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("a default clashed with the file:\n%v", err)
			}
			got, want := tc.check(c)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// A config built in code gets the same bent defaults.
func TestSetDefaultsBendsToo(t *testing.T) {
	c := &Config{Upstream: Upstream{Servers: []Server{{URL: "http://a"}}}}
	c.HealthChecks.Interval = Duration(300 * time.Millisecond)
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.HealthChecks.Timeout; got != Duration(300*time.Millisecond) {
		t.Errorf("timeout = %s, want 300ms", got)
	}
	if !strings.HasPrefix(c.Where("listen"), "default") {
		t.Errorf("Where(listen) = %q for a default", c.Where("listen"))
	}
}
