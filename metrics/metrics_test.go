package metrics

import (
	"bytes"
	"fmt"
	"iter"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape gathers reg and parses the text exposition with Prometheus's own
// parser, so the test sees what a Prometheus server would.
func scrape(t *testing.T, reg prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encode: %v", err)
		}
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	out, err := p.TextToMetricFamilies(&buf)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, buf.String())
	}
	return out
}

// find returns the metric of family name whose labels include want.
func find(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no %s with labels %v", name, want)
	return nil
}

func TestObserveCountsAndHistogram(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.Observe("api", "api", "a", 200, 3*time.Millisecond)
	m.Observe("api", "api", "a", 200, 30*time.Millisecond)
	m.Observe("api", "api", "a", 502, 2*time.Second)
	m.Observe("web", "default", "b", 200, 400*time.Microsecond)
	m.Observe("web", "default", "", 429, 0)
	m.Observe("web", "default", "b", 999, time.Millisecond) // out of range
	mfs := scrape(t, reg)

	counts := []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"route": "api", "server": "a", "code": "200"}, 2},
		{map[string]string{"route": "api", "server": "a", "code": "502"}, 1},
		{map[string]string{"route": "web", "server": "b", "code": "200"}, 1},
		{map[string]string{"route": "web", "server": "", "code": "429"}, 1},
		{map[string]string{"route": "web", "server": "b", "code": "other"}, 1},
	}
	for _, c := range counts {
		if got := find(t, mfs, RequestsTotal, c.labels).GetCounter().GetValue(); got != c.want {
			t.Errorf("%s%v = %v, want %v", RequestsTotal, c.labels, got, c.want)
		}
	}

	h := find(t, mfs, RequestDuration, map[string]string{"route": "api", "upstream": "api", "server": "a"}).GetHistogram()
	if h.GetSampleCount() != 3 {
		t.Errorf("count %d, want 3", h.GetSampleCount())
	}
	if got, want := h.GetSampleSum(), 2.033; got < want-1e-9 || got > want+1e-9 {
		t.Errorf("sum %v, want %v", got, want)
	}
	cum := map[float64]uint64{}
	for _, b := range h.GetBucket() {
		cum[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	for le, want := range map[float64]uint64{.0025: 0, .005: 1, .05: 2, 1: 2, 2.5: 3, 10: 3} {
		if cum[le] != want {
			t.Errorf("bucket le=%v: %d, want %d", le, cum[le], want)
		}
	}
	if len(h.GetBucket()) != len(DurationBuckets)+1 { // the text format adds +Inf
		t.Errorf("%d buckets, want %d", len(h.GetBucket()), len(DurationBuckets)+1)
	}
	for _, lp := range mfs[RequestDuration].GetMetric()[0].GetLabel() {
		if lp.GetName() == "code" {
			t.Error("the duration histogram must not have a code label")
		}
	}
}

func TestCountersAndReloads(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.now = func() time.Time { return time.Unix(1_700_000_000, 0) }
	m.RateLimited("api")
	m.RateLimited("api")
	m.Retry("api", 2)
	m.Retry("api", 0)
	m.Retry("web", 1)
	m.Reload(true)
	m.Reload(false)
	m.Reload(false)
	m.HealthCheck("api", "a", true, 5*time.Millisecond)
	m.HealthCheck("api", "a", false, 2*time.Second)
	m.SetBuildInfo("v1.2.3", "abc", "go1.26")
	mfs := scrape(t, reg)

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{RateLimitedTotal, map[string]string{"route": "api"}, 2},
		{RetriesTotal, map[string]string{"upstream": "api"}, 2},
		{RetriesTotal, map[string]string{"upstream": "web"}, 1},
		{ConfigReloadsTotal, map[string]string{"result": "success"}, 1},
		{ConfigReloadsTotal, map[string]string{"result": "failure"}, 2},
		{ConfigLastReloadOK, nil, 0},
		{ConfigLastReloadAt, nil, 1_700_000_000},
		{BuildInfo, map[string]string{"version": "v1.2.3", "commit": "abc"}, 1},
	}
	for _, tt := range tests {
		m := find(t, mfs, tt.name, tt.labels)
		got := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		if got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	for result, want := range map[string]uint64{"success": 1, "failure": 1} {
		h := find(t, mfs, HealthCheckDuration, map[string]string{"server": "a", "result": result}).GetHistogram()
		if h.GetSampleCount() != want {
			t.Errorf("health %s: %d checks, want %d", result, h.GetSampleCount(), want)
		}
	}
}

func TestServerSourceReadAtScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	if _, ok := scrape(t, reg)[ServerUp]; ok {
		t.Fatal("server series without a source")
	}
	var mu sync.Mutex
	stats := []ServerStat{
		{Upstream: "api", Server: "a", Up: true, InFlight: 3, Ejections: 2, LatencyEWMA: 20 * time.Millisecond, Circuit: "half_open"},
		{Upstream: "api", Server: "b", Up: false, Drained: true},
		{Upstream: "api", Server: "b"}, // a duplicate must not break the scrape
	}
	m.SetServerSource(func(yield func(ServerStat) bool) {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range stats {
			if !yield(s) {
				return
			}
		}
	})
	mfs := scrape(t, reg)
	if n := len(mfs[ServerCircuit].GetMetric()); n != 3 {
		t.Errorf("%d circuit series, want 3 (server b has no breaker)", n)
	}
	a := map[string]string{"upstream": "api", "server": "a"}
	b := map[string]string{"upstream": "api", "server": "b"}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{ServerUp, a, 1}, {ServerUp, b, 0},
		{ServerInFlight, a, 3}, {ServerEjections, a, 2},
		{ServerDrained, b, 1}, {ServerLatencyEWMA, a, 0.02},
		{ServerCircuit, map[string]string{"server": "a", "state": "half_open"}, 1},
		{ServerCircuit, map[string]string{"server": "a", "state": "open"}, 0},
		{ServerCircuit, map[string]string{"server": "a", "state": "closed"}, 0},
	}
	for _, c := range checks {
		m := find(t, mfs, c.name, c.labels)
		if got := m.GetGauge().GetValue() + m.GetCounter().GetValue(); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// Live: the next scrape sees the new state with no call to metrics.
	mu.Lock()
	stats[0].InFlight, stats[1].Up = 7, true
	mu.Unlock()
	mfs = scrape(t, reg)
	if got := find(t, mfs, ServerInFlight, a).GetGauge().GetValue(); got != 7 {
		t.Errorf("in flight %v after change, want 7", got)
	}
	if got := find(t, mfs, ServerUp, b).GetGauge().GetValue(); got != 1 {
		t.Errorf("up %v after change, want 1", got)
	}

	m.SetServerSource(nil)
	if _, ok := scrape(t, reg)[ServerUp]; ok {
		t.Error("server series after the source was removed")
	}
}

func TestForgetServer(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.Observe("r", "u", "gone", 200, time.Millisecond)
	m.Observe("r", "u", "kept", 200, time.Millisecond)
	m.ForgetServer("u", "gone")
	for _, mt := range scrape(t, reg)[RequestsTotal].GetMetric() {
		for _, lp := range mt.GetLabel() {
			if lp.GetValue() == "gone" {
				t.Fatal("forgotten server still exported")
			}
		}
	}
	// Traffic after a re-add starts a fresh series rather than writing to
	// a child the vector no longer exports.
	m.Observe("r", "u", "gone", 200, time.Millisecond)
	if got := find(t, scrape(t, reg), RequestsTotal, map[string]string{"server": "gone"}).GetCounter().GetValue(); got != 1 {
		t.Errorf("re-added server count %v, want 1", got)
	}
}

func TestNewRegistryHasRuntimeCollectors(t *testing.T) {
	reg := NewRegistry()
	New(reg)
	mfs := scrape(t, reg)
	for _, name := range []string{"go_goroutines", "process_start_time_seconds", ConfigReloadsTotal} {
		if _, ok := mfs[name]; !ok && (name != "process_start_time_seconds" || processSupported()) {
			t.Errorf("no %s", name)
		}
	}
}

func processSupported() bool {
	return prometheus.NewPedanticRegistry().Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})) == nil
}

func TestCodeLabels(t *testing.T) {
	for _, c := range []int{100, 200, 404, 499, 599} {
		if codeLabels[c] != fmt.Sprint(c) {
			t.Errorf("label of %d is %q", c, codeLabels[c])
		}
	}
	if codeLabels[99] != "" {
		t.Error("label below 100")
	}
}

// TestObserveAllocs guards the request path: once warmed up, recording a
// request must not allocate.
func TestObserveAllocs(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.SetServerSource(iter.Seq[ServerStat](func(func(ServerStat) bool) {}))
	m.ObserveBytes("r", "u", "s", 200, time.Millisecond, 10, 100)
	m.RateLimited("r")
	m.Retry("u", 1)
	got := testing.AllocsPerRun(1000, func() {
		m.ObserveBytes("r", "u", "s", 200, time.Millisecond, 10, 100)
		m.RateLimited("r")
		m.Retry("u", 1)
	})
	if got != 0 {
		t.Errorf("%v allocs per request, want 0", got)
	}
}

func TestConcurrentFirstUse(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	var wg sync.WaitGroup
	codes := []int{200, 201, 404, 500, 502, 503}
	for i := range 8 {
		wg.Go(func() {
			for j := range 600 {
				m.Observe("r", "u", fmt.Sprint("s", j%3), codes[(i+j)%len(codes)], time.Millisecond)
			}
		})
	}
	wg.Wait()
	var total float64
	family := scrape(t, reg)[RequestsTotal].GetMetric()
	for _, mt := range family {
		total += mt.GetCounter().GetValue()
	}
	if total != 8*600 {
		t.Errorf("total %v, want %d", total, 8*600)
	}
	if len(family) != 18 { // 3 servers × 6 codes
		t.Errorf("%d series, want 18", len(family))
	}
}

// Body bytes are summed per server over routes and codes, as HAProxy's
// bytes in and out are; answers no server gave count none.
func TestObserveBytesPerServer(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.ObserveBytes("api", "u", "a", 200, time.Millisecond, 100, 17_345_678)
	m.ObserveBytes("admin", "u", "a", 404, time.Millisecond, 0, 20)
	m.ObserveBytes("api", "u", "b", 201, time.Millisecond, 5, 0)
	m.ObserveBytes("api", "u", "", 429, 0, 7, 30)
	m.Observe("api", "u", "a", 200, time.Millisecond) // no sizes: adds nothing
	mfs := scrape(t, reg)
	for _, c := range []struct {
		name, server string
		want         float64
	}{
		{ServerRequestBytes, "a", 100},
		{ServerResponseBytes, "a", 17_345_698},
		{ServerRequestBytes, "b", 5},
		{ServerResponseBytes, "b", 0},
	} {
		if got := find(t, mfs, c.name, map[string]string{"upstream": "u", "server": c.server}).GetCounter().GetValue(); got != c.want {
			t.Errorf("%s{server=%q} = %v, want %v", c.name, c.server, got, c.want)
		}
	}
	for _, name := range []string{ServerRequestBytes, ServerResponseBytes} {
		for _, mt := range mfs[name].GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "server" && lp.GetValue() == "" {
					t.Errorf("%s has a series for no server", name)
				}
			}
		}
	}
	m.ForgetServer("u", "a")
	for _, mt := range scrape(t, reg)[ServerResponseBytes].GetMetric() {
		for _, lp := range mt.GetLabel() {
			if lp.GetValue() == "a" {
				t.Error("forgotten server's bytes still exported")
			}
		}
	}
}
