package admin

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tbsphathuynh/proxy/metrics"
	"github.com/tbsphathuynh/proxy/upstream"
)

func TestStats(t *testing.T) {
	f := newFixture(t, Options{Loopback: true, Now: func() time.Time { return t0 }})
	// Two routes onto one server: the stats sum them.
	f.m.ObserveBytes("api", "api", "a", 200, 2*time.Millisecond, 300, 17_345_678)
	f.m.ObserveBytes("api", "api", "a", 502, 30*time.Millisecond, 0, 80)
	f.m.ObserveBytes("admin", "api", "a", 404, 20*time.Second, 0, 20)
	f.m.Observe("web", "default", "", 503, 0)
	f.m.RateLimited("web")
	f.m.Observe("web", "default", "", 429, 0)
	f.m.Observe("", "", "", 404, 0) // no route matched

	code, body := f.do(t, "GET", "/api/stats", "")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	var got stats
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.TimeMS != t0.UnixMilli() {
		t.Errorf("time %d", got.TimeMS)
	}
	if d := cmp.Diff(metrics.DurationBuckets, got.Buckets); d != "" {
		t.Errorf("buckets (-want +got):\n%s", d)
	}
	n := len(got.Buckets) + 1
	// Cumulative counts: 2ms lands in le=.0025, 30ms in le=.05, 20s only
	// in +Inf.
	aCounts := make([]uint64, n)
	for i, le := range got.Buckets {
		switch {
		case le >= .05:
			aCounts[i] = 2
		case le >= .0025:
			aCounts[i] = 1
		}
	}
	aCounts[n-1] = 3
	noneCounts := make([]uint64, n)
	for i := range noneCounts {
		noneCounts[i] = 2 // both answers took 0s
	}
	want := []serverStats{
		{Upstream: "", Server: "", codeCounts: codeCounts{Requests: 1, ClientErrors: 1, NotFound: 1}},
		{Upstream: "api", Server: "a", codeCounts: codeCounts{Requests: 3, ClientErrors: 1, NotFound: 1, Errors: 1},
			BytesIn: 300, BytesOut: 17_345_778, Counts: aCounts, Sum: 20.032},
		{Upstream: "default", Server: "", codeCounts: codeCounts{Requests: 2, ClientErrors: 1, TooMany: 1, Errors: 1}, Counts: noneCounts},
	}
	want[0].Counts = make([]uint64, n)
	for i := range want[0].Counts {
		want[0].Counts[i] = 1
	}
	// codeCounts is embedded unexported, to flatten into the JSON.
	inner := cmp.AllowUnexported(serverStats{}, routeStats{})
	if d := cmp.Diff(want, got.Servers, inner, cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })); d != "" {
		t.Errorf("servers (-want +got):\n%s", d)
	}
	wantRoutes := []routeStats{
		{Route: "", codeCounts: codeCounts{Requests: 1, ClientErrors: 1, NotFound: 1}},
		{Route: "admin", codeCounts: codeCounts{Requests: 1, ClientErrors: 1, NotFound: 1}},
		{Route: "api", codeCounts: codeCounts{Requests: 2, Errors: 1}},
		{Route: "web", codeCounts: codeCounts{Requests: 2, ClientErrors: 1, TooMany: 1, Errors: 1}, RateLimited: 1},
	}
	if d := cmp.Diff(wantRoutes, got.Routes, inner); d != "" {
		t.Errorf("routes (-want +got):\n%s", d)
	}
}

func TestStatsWithNoTraffic(t *testing.T) {
	f := newFixture(t, Options{Loopback: true})
	_, body := f.do(t, "GET", "/api/stats", "")
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	// Lists, never null, so the page iterates without checks.
	for _, k := range []string{"buckets", "servers", "routes"} {
		if _, ok := got[k].([]any); !ok {
			t.Errorf("%s = %v, want a list", k, got[k])
		}
	}
}

func TestServerFromSnapshot(t *testing.T) {
	snap := upstream.ServerSnapshot{
		Name: "a", URL: "http://10.0.0.1", Weight: 2, Healthy: true, Usable: false,
		Reason: "ejected", Since: t0, InFlight: 1, Requests: 9, Failures: 2,
		LatencyEWMA: 1500 * time.Microsecond, Ramp: 0.5, Ejections: 1, EjectedUntil: t0.Add(time.Minute),
		LastCheck: upstream.Check{At: t0, OK: true, Result: "status 200", Latency: 2 * time.Millisecond},
		Circuit:   "half_open", CircuitReason: "probing after 30s open",
	}
	want := Server{
		Name: "a", URL: "http://10.0.0.1", Weight: 2, Healthy: true, Usable: false,
		Reason: "ejected", Since: t0, InFlight: 1, Requests: 9, Failures: 2,
		LatencyEWMAms: 1.5, Ramp: 0.5, Ejections: 1, EjectedUntil: t0.Add(time.Minute),
		LastCheck: &Check{At: t0, OK: true, Result: "status 200", LatencyMS: 2},
		Circuit:   "half_open", CircuitReason: "probing after 30s open",
	}
	if d := cmp.Diff([]Server{want}, ServersFromSnapshots([]upstream.ServerSnapshot{snap})); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if got := ServerFromSnapshot(upstream.ServerSnapshot{Name: "x"}); got.LastCheck != nil {
		t.Error("no check must give a nil LastCheck")
	}
}
