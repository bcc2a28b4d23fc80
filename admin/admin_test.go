package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tbsphathuynh/proxy/metrics"
)

// fakeState is a State whose answers the test sets.
type fakeState struct {
	mu        sync.Mutex
	ups       []Upstream
	routes    []Route
	notReady  error
	reloadErr error
	reloads   int
	drains    []string
}

// Upstreams returns a deep copy, as the real server builds a fresh
// snapshot: the handler encodes it after the lock is released.
func (f *fakeState) Upstreams() []Upstream {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Upstream, len(f.ups))
	for i, u := range f.ups {
		out[i] = u
		out[i].Servers = append([]Server(nil), u.Servers...)
	}
	return out
}

func (f *fakeState) Routes() []Route { return f.routes }

func (f *fakeState) Ready() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.notReady
}

func (f *fakeState) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return f.reloadErr
}

func (f *fakeState) Stale() []string { return nil }

func (f *fakeState) AddServer(string, ServerSpec) error { return nil }

func (f *fakeState) RemoveServer(string, string) error { return nil }

func (f *fakeState) PatchServer(string, string, ServerPatch) error { return nil }

func (f *fakeState) SetDrained(u, s string, d bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, up := range f.ups {
		if up.Name != u {
			continue
		}
		for j, sv := range up.Servers {
			if sv.Name == s {
				f.ups[i].Servers[j].Drained = d
				f.drains = append(f.drains, fmt.Sprintf("%s/%s=%v", u, s, d))
				return nil
			}
		}
	}
	return fmt.Errorf("upstream %q server %q: %w", u, s, ErrNotFound)
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newFakeState() *fakeState {
	return &fakeState{
		ups: []Upstream{
			{Name: "api", Strategy: "least_connections", Servers: []Server{
				{Name: "a", URL: "http://127.0.0.1:9001", Weight: 1, Source: "config", Healthy: true, Usable: true, Reason: "status 200", Since: t0,
					InFlight: 2, Requests: 40, LatencyEWMAms: 12.5, Ramp: 1, Circuit: "closed",
					LastCheck: &Check{At: t0, OK: true, Result: "status 200", LatencyMS: 1.5}},
				{Name: "b", URL: "http://127.0.0.1:9002", Weight: 2, Healthy: false, Reason: "status 503", Since: t0, Ejections: 3},
			}},
			{Name: "default", Strategy: "round_robin", Servers: []Server{
				{Name: "c", URL: "http://127.0.0.1:9003", Weight: 1, Backup: true, Healthy: true, Usable: true},
			}},
		},
		routes: []Route{
			{Name: "api", Host: "api.example.com", PathPrefix: "/v1", Upstream: "api",
				RateLimit: &RateLimit{RequestsPerSecond: 10, Burst: 20, Key: "ip", Store: "memory"}},
			{Name: "default", Upstream: "default"},
		},
	}
}

type fixture struct {
	srv   *httptest.Server
	state *fakeState
	m     *metrics.Metrics
	reg   *prometheus.Registry
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	f := &fixture{state: newFakeState(), reg: metrics.NewRegistry()}
	f.m = metrics.New(f.reg)
	opts.Registry, opts.State = f.reg, f.state
	f.srv = httptest.NewServer(New(opts))
	t.Cleanup(f.srv.Close)
	return f
}

// do sends a request and returns the status and body.
func (f *fixture) do(t *testing.T, method, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestHealthAndReadiness(t *testing.T) {
	f := newFixture(t, Options{Loopback: true})
	if code, body := f.do(t, "GET", "/healthz", ""); code != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
	steps := []struct {
		name     string
		notReady error
		code     int
		body     string
	}{
		{"ready", nil, 200, "ready\n"},
		{"upstream without server", errors.New("upstream api has no usable server"), 503, "not ready: upstream api has no usable server\n"},
		{"shutting down", errors.New("shutting down"), 503, "not ready: shutting down\n"},
		{"ready again", nil, 200, "ready\n"},
	}
	for _, s := range steps {
		f.state.mu.Lock()
		f.state.notReady = s.notReady
		f.state.mu.Unlock()
		if code, body := f.do(t, "GET", "/readyz", ""); code != s.code || body != s.body {
			t.Errorf("%s: readyz %d %q, want %d %q", s.name, code, body, s.code, s.body)
		}
	}
}

func TestUpstreamsJSON(t *testing.T) {
	f := newFixture(t, Options{Loopback: true})
	code, body := f.do(t, "GET", "/api/upstreams", "")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	// Decode into plain maps so the test checks the wire names, not our
	// struct tags against themselves.
	var got struct {
		Upstreams []map[string]any `json:"upstreams"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if len(got.Upstreams) != 2 || got.Upstreams[0]["name"] != "api" || got.Upstreams[0]["strategy"] != "least_connections" {
		t.Fatalf("upstreams: %s", body)
	}
	a := got.Upstreams[0]["servers"].([]any)[0].(map[string]any)
	want := map[string]any{
		"name": "a", "url": "http://127.0.0.1:9001", "weight": 1.0, "backup": false, "source": "config",
		"healthy": true, "usable": true, "reason": "status 200", "since": "2026-01-02T03:04:05Z",
		"in_flight": 2.0, "requests": 40.0, "failures": 0.0, "latency_ewma_ms": 12.5, "ramp": 1.0,
		"ejections": 0.0, "drained": false, "circuit": "closed",
		"last_check": map[string]any{"at": "2026-01-02T03:04:05Z", "ok": true, "result": "status 200", "latency_ms": 1.5},
	}
	if d := cmp.Diff(want, a); d != "" {
		t.Errorf("server a (-want +got):\n%s", d)
	}
	b := got.Upstreams[0]["servers"].([]any)[1].(map[string]any)
	if _, ok := b["last_check"]; ok {
		t.Error("a server never checked must have no last_check")
	}
}

func TestRoutesJSON(t *testing.T) {
	f := newFixture(t, Options{Loopback: true})
	_, body := f.do(t, "GET", "/api/routes", "")
	var got struct{ Routes []Route }
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(f.state.routes, got.Routes); d != "" {
		t.Errorf("routes (-want +got):\n%s", d)
	}
	if !strings.Contains(body, `"path_prefix": "/v1"`) || !strings.Contains(body, `"requests_per_second": 10`) {
		t.Errorf("wire names: %s", body)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	f := newFixture(t, Options{Loopback: true})
	f.m.Observe("api", "api", "a", 200, 3*time.Millisecond)
	f.m.Observe("api", "api", "a", 200, 7*time.Millisecond)
	f.m.Observe("api", "api", "b", 503, 20*time.Millisecond)
	f.m.RateLimited("api")
	f.m.Reload(false)
	f.m.SetServerSource(func(yield func(metrics.ServerStat) bool) {
		yield(metrics.ServerStat{Upstream: "api", Server: "a", Up: true, InFlight: 4})
	})

	code, body := f.do(t, "GET", "/metrics", "")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		for _, m := range mfs[name].GetMetric() {
			if matches(m, labels) {
				switch {
				case m.Counter != nil:
					return m.GetCounter().GetValue()
				case m.Gauge != nil:
					return m.GetGauge().GetValue()
				case m.Histogram != nil:
					return float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
		t.Fatalf("no %s%v", name, labels)
		return 0
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"proxy_requests_total", map[string]string{"route": "api", "upstream": "api", "server": "a", "code": "200"}, 2},
		{"proxy_requests_total", map[string]string{"server": "b", "code": "503"}, 1},
		{"proxy_request_duration_seconds", map[string]string{"server": "a"}, 2},
		{"proxy_rate_limited_total", map[string]string{"route": "api"}, 1},
		{"proxy_config_reloads_total", map[string]string{"result": "failure"}, 1},
		{"proxy_upstream_server_up", map[string]string{"upstream": "api", "server": "a"}, 1},
		{"proxy_upstream_server_in_flight", map[string]string{"server": "a"}, 4},
	}
	for _, c := range checks {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, ok := mfs["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
}

func matches(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

func TestPprofOffByDefault(t *testing.T) {
	off := newFixture(t, Options{Loopback: true})
	if code, _ := off.do(t, "GET", "/debug/pprof/", ""); code != 404 {
		t.Errorf("pprof without the option: %d, want 404", code)
	}
	on := newFixture(t, Options{Loopback: true, Pprof: true})
	if code, body := on.do(t, "GET", "/debug/pprof/", ""); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof with the option: %d", code)
	}
}

// Profiles need the admin token like every sensitive endpoint: off
// loopback always, and on loopback when one is set.
func TestPprofNeedsTheToken(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     Options
		token    string
		wantCode int
	}{
		{"off loopback, no token sent", Options{Token: "s3cret", Pprof: true}, "", 401},
		{"off loopback, wrong token", Options{Token: "s3cret", Pprof: true}, "nope", 401},
		{"off loopback, the token", Options{Token: "s3cret", Pprof: true}, "s3cret", 200},
		{"loopback with a token, none sent", Options{Loopback: true, Token: "s3cret", Pprof: true}, "", 401},
		{"loopback without a token", Options{Loopback: true, Pprof: true}, "", 200},
	} {
		f := newFixture(t, tc.opts)
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline"} {
			if code, _ := f.do(t, "GET", path, tc.token); code != tc.wantCode {
				t.Errorf("%s: GET %s: %d, want %d", tc.name, path, code, tc.wantCode)
			}
		}
	}
}

func TestDashboardServed(t *testing.T) {
	f := newFixture(t, Options{Loopback: true})
	for path, want := range map[string]string{
		"/": "<script src=\"app.js\">", "/app.js": "function quantile", "/style.css": "--ok:",
	} {
		code, body := f.do(t, "GET", path, "")
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, body lacks %q", path, code, want)
		}
	}
	if code, _ := f.do(t, "GET", "/nope.js", ""); code != 404 {
		t.Errorf("unknown file: %d", code)
	}
	res, err := f.srv.Client().Get(f.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q: the page must load nothing from elsewhere", csp)
	}
}
