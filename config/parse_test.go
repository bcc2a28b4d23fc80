package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// parseEnv parses src as "t.yaml" with env as the whole environment, so
// tests do not depend on the machine's variables.
func parseEnv(t *testing.T, src string, env map[string]string) (*Config, error) {
	t.Helper()
	return parse("t.yaml", []byte(src), func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}, false, nil)
}

// errLines returns err's errors as "FILE:LINE:COL: message" strings.
func errLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, want ErrorList: %v", err, err)
	}
	return strings.Split(list.Error(), "\n")
}

func ptr[T any](v T) *T { return &v }

const seed = `servers:
  - url: http://backend1.example.com
  - url: http://backend2.example.com

load_balancing:
  strategy: round_robin

health_checks:
  interval: 10s
`

// defaultUpstream is what every upstream gets when it only lists servers.
func defaultUpstream(servers ...Server) Upstream {
	return Upstream{
		Servers:       servers,
		LoadBalancing: LoadBalancing{Strategy: "round_robin", BoundedLoad: 0.25},
		HealthChecks: HealthChecks{
			Interval: Duration(10 * time.Second), FastInterval: Duration(time.Second), Timeout: Duration(2 * time.Second),
			Path: "/", ExpectedStatus: "200-399", HealthyThreshold: 2, UnhealthyThreshold: 3,
			// Passive ejection is on with no key written.
			Passive: &Passive{
				Enabled: ptr(true), ConsecutiveFailures: 3, EjectionTime: Duration(10 * time.Second),
				MaxEjectionTime: Duration(60 * time.Second), MaxEjectionPercent: 50,
			},
		},
		Retries: defaultRetries(0, 0),
		Timeouts: Timeouts{
			Connect:        Duration(5 * time.Second),
			ResponseHeader: Duration(30 * time.Second),
			IdleConnection: Duration(90 * time.Second),
		},
		Protocol: "auto",
	}
}

func defaultRetries(attempts int, budget float64) Retries {
	return Retries{
		Attempts: attempts, Budget: budget, MinPerSecond: 3, OnStatus: []int{502, 503, 504},
		MaxBodyBytes: 64 * KiB, Backoff: Duration(25 * time.Millisecond),
	}
}

func TestParseSeedAppliesDocumentedDefaults(t *testing.T) {
	t.Setenv(FastPathEnv, "")
	got, err := parseEnv(t, seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Listen:          ":8080",
		Admin:           Admin{Listen: ptr("127.0.0.1:9901")},
		ShutdownTimeout: Duration(30 * time.Second),
		Client: Client{
			ReadHeaderTimeout: Duration(10 * time.Second),
			IdleTimeout:       Duration(120 * time.Second),
			MaxHeaderBytes:    64 << 10,
			FastPath:          ptr(true),
			DirectLane:        ptr(true),
			AllowedUpgrades:   []string{"websocket"},
		},
		Upstream: defaultUpstream(
			Server{URL: "http://backend1.example.com", Name: "backend1.example.com:80", Weight: 1},
			Server{URL: "http://backend2.example.com", Name: "backend2.example.com:80", Weight: 1},
		),
		Logging: Logging{Level: "info", Format: "text", AccessLog: "stdout", AccessLogSample: 1},
		Tracing: Tracing{SampleRatio: 0.1},
		File:    "t.yaml",
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(Config{})); diff != "" {
		t.Errorf("seed config (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{DefaultUpstream}, got.UpstreamNames()); diff != "" {
		t.Errorf("UpstreamNames (-want +got):\n%s", diff)
	}
	if got.UpstreamByName(DefaultUpstream) != &got.Upstream {
		t.Error("UpstreamByName(default) is not &c.Upstream")
	}
}

// specExample is the product contract's larger example (every key of
// docs/configuration.md) with its "..." filled in.
const specExample = `listen: ":8080"                  # default ":8080"
tls: {cert_file: cert.pem, key_file: key.pem}   # optional; then h2 is offered via ALPN
admin:
  listen: "127.0.0.1:9901"       # default; "" turns the admin listener off
  token: ${ADMIN_TOKEN}          # required for POST endpoints when not on loopback
shutdown_timeout: 30s

servers:
  - url: http://10.0.0.1:8080
    weight: 3                    # default 1
    backup: false                # used only when no primary is healthy
    max_connections: 0           # 0 = unlimited

load_balancing:
  strategy: round_robin          # see strategies below

health_checks:
  interval: 10s
  timeout: 2s
  path: /health                  # GET; default /
  expected_status: "200-399"
  healthy_threshold: 2           # consecutive passes to return to the pool
  unhealthy_threshold: 3         # consecutive fails to leave it
  passive:                       # ejection on live traffic (outlier detection)
    consecutive_failures: 5
    ejection_time: 30s

rate_limit:
  requests_per_second: 100
  burst: 200
  key: ip                        # ip | header:NAME
  store: memory                  # memory | redis
  redis: {address: 127.0.0.1:6379}
  on_store_error: allow          # allow | deny, when redis is unreachable

retries:
  attempts: 2                    # extra tries, each on another server
  budget: 0.2                    # retries at most this share of requests
timeouts:
  connect: 5s
  response_header: 30s
  idle_connection: 90s

upstreams:
  api:
    servers: [{url: http://127.0.0.1:9001}, {url: http://127.0.0.1:9002}]
    load_balancing: {strategy: least_connections}
routes:                          # first match wins; the default upstream catches the rest
  - match: {host: api.example.com, path_prefix: /v1}
    upstream: api
    strip_prefix: false
    rate_limit: {requests_per_second: 10, burst: 20}

logging: {level: info, format: json, access_log: stdout}   # access_log: stdout | stderr | FILE | off
tracing: {otlp_endpoint: "", sample_ratio: 0.1}
`

func TestParseSpecExample(t *testing.T) {
	c, err := parseEnv(t, specExample, map[string]string{"ADMIN_TOKEN": "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"admin token from env", c.Admin.Token, "s3cret"},
		{"tls", *c.TLS, TLS{CertFile: "cert.pem", KeyFile: "key.pem"}},
		{"weight", c.Servers[0].Weight, 3},
		{"passive defaults", *c.HealthChecks.Passive, Passive{
			Enabled: ptr(true), ConsecutiveFailures: 5, EjectionTime: Duration(30 * time.Second),
			MaxEjectionTime: Duration(60 * time.Second), MaxEjectionPercent: 50,
		}},
		{"rate limit defaults", *c.RateLimit, RateLimit{
			RequestsPerSecond: 100, Burst: 200, Key: "ip", Store: "memory", OnStoreError: "allow",
			Redis: Redis{Address: "127.0.0.1:6379", KeyPrefix: "proxy:rl:", Timeout: Duration(100 * time.Millisecond)},
		}},
		{"retries", c.Retries, defaultRetries(2, 0.2)},
		{"upstream names", c.UpstreamNames(), []string{"default", "api"}},
		{"api strategy", c.UpstreamByName("api").LoadBalancing.Strategy, "least_connections"},
		{"api server name", c.Upstreams["api"].Servers[1].Name, "127.0.0.1:9002"},
		{"route name", c.Routes[0].Name, "api.example.com/v1"},
		{"route burst", c.Routes[0].RateLimit.Burst, 20},
		{"logging", c.Logging, Logging{Level: "info", Format: "json", AccessLog: "stdout", AccessLogSample: 1}},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestExamplesParse(t *testing.T) {
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	// The TLS examples name examples/certs/server.{crt,key}, which each
	// file says how to make; make them here, in a directory of our own.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "examples", "certs"), 0o700); err != nil {
		t.Fatal(err)
	}
	writePair(t, filepath.Join(dir, "examples", "certs"), "server", time.Now().Add(time.Hour))
	for i, f := range files {
		if files[i], err = filepath.Abs(f); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatalf("example does not load:\n%v", err)
			}
			if len(c.Warnings) > 0 {
				t.Errorf("example has warnings:\n%v", c.Warnings)
			}
		})
	}

}

func TestDefaultsOnlyFillAbsentKeys(t *testing.T) {
	c, err := parseEnv(t, `servers: [{url: http://a}]
shutdown_timeout: 0
tracing: {sample_ratio: 0}
timeouts: {connect: 0}
retries: {attempts: 1, budget: 0.5}
rate_limit: {requests_per_second: 2.5}
circuit_breaker:
health_checks: {enabled: false}
client: {fast_path: false}
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"explicit zero shutdown kept", c.ShutdownTimeout, Duration(0)},
		{"explicit zero sample ratio kept", c.Tracing.SampleRatio, 0.0},
		{"explicit zero connect kept", c.Timeouts.Connect, Duration(0)},
		{"budget kept", c.Retries.Budget, 0.5},
		{"burst is ceil(rps)", c.RateLimit.Burst, 3},
		{"empty section enables defaults", *c.CircuitBreaker, CircuitBreaker{
			ConsecutiveFailures: 5, OpenTime: Duration(30 * time.Second),
			Window: Duration(10 * time.Second), MinRequests: 20, HalfOpenRequests: 1,
		}},
		{"enabled false kept", c.HealthChecks.Enabled, ptr(false)},
		{"fast path off kept", c.Client.FastPathOn(), false},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	_, err := parseEnv(t, `x-checks: &checks
  interval: 3s
  path: /ping
servers: [{url: http://a}]
health_checks:
  <<: *checks
  path: /override
`, nil)
	// x-checks is an unknown key: extension keys are not special.
	if diff := cmp.Diff([]string{`t.yaml:1:1: x-checks: unknown key`}, errLines(t, err)); diff != "" {
		t.Fatalf("errors (-want +got):\n%s", diff)
	}

	c, err := parseEnv(t, `upstreams:
  a: &base
    servers: [{url: http://a}]
    health_checks: {interval: 3s}
  b:
    <<: *base
    servers: [{url: http://b}]
routes: [{upstream: a}, {upstream: b}]
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := c.Upstreams["b"]
	if got := b.Servers[0].URL; got != "http://b" {
		t.Errorf("b's own servers should win over the merged ones, got %s", got)
	}
	if got := b.HealthChecks.Interval; got != Duration(3*time.Second) {
		t.Errorf("b should inherit the merged interval, got %s", got)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != good {
		t.Errorf("File = %q, want %q", c.File, good)
	}

	missing := filepath.Join(dir, "missing.yaml")
	_, err = Load(missing)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want an error wrapping fs.ErrNotExist", err)
	}
	want := missing + ": cannot read config: no such file or directory"
	if err == nil || err.Error() != want {
		t.Errorf("Load(missing) = %v, want %q", err, want)
	}
}

func TestBuiltInCodeConfig(t *testing.T) {
	c := &Config{Upstream: Upstream{Servers: []Server{{URL: "http://127.0.0.1:9001"}, {URL: "http://127.0.0.1:9002"}}}}
	c.LoadBalancing.Strategy = "least_connections"
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := c.Servers[1].Weight; got != 1 {
		t.Errorf("weight = %d, want 1", got)
	}
	if got := c.LoadBalancing.Strategy; got != "least_connections" {
		t.Errorf("strategy = %q, want least_connections", got)
	}

	c.Servers[0].URL = "127.0.0.1:9001"
	want := `servers[0].url: "127.0.0.1:9001" needs a scheme: http://127.0.0.1:9001`
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %q", err, want)
	}
}

// registered counts TestRegisterStrategy runs, so that with -count=N each
// run registers a name that is new to the process.
var registered atomic.Int32

func TestRegisterStrategy(t *testing.T) {
	name := fmt.Sprintf("custom%d", registered.Add(1))
	src := "servers: [{url: http://a}]\nload_balancing: {strategy: " + name + "}\n"
	_, err := parseEnv(t, src, nil)
	want := `t.yaml:2:28: load_balancing.strategy: unknown strategy "` + name + `"`
	if got := errLines(t, err); len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Fatalf("before registering: got %q, want one error starting %q", got, want)
	}
	RegisterStrategy(name)
	if _, err := parseEnv(t, src, nil); err != nil {
		t.Errorf("after registering: %v", err)
	}
}

// A config built in code can turn the fast path off (SetDefaults keeps an
// explicit false), and PROXY_FAST_PATH=off turns it off where the file
// leaves it unset, but not where the file says true.
func TestFastPathSwitch(t *testing.T) {
	off := false
	c := &Config{Client: Client{FastPath: &off}}
	c.SetDefaults()
	if c.Client.FastPathOn() || c.Client.DirectLaneOn() {
		t.Error("SetDefaults turned an explicit fast_path: false back on")
	}
	t.Setenv(FastPathEnv, "off")
	for _, tc := range []struct {
		yaml string
		want bool
	}{
		{"", false},
		{"client: {fast_path: true}\n", true},
		{"client: {fast_path: false}\n", false},
	} {
		cfg, err := Parse("t.yaml", []byte("servers: [{url: http://a}]\n"+tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Client.FastPathOn(); got != tc.want {
			t.Errorf("%s=off, %q: fast path %v, want %v", FastPathEnv, tc.yaml, got, tc.want)
		}
	}
}
