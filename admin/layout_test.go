//go:build unix

package admin

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tbsphathuynh/proxy/metrics"
)

// openDashboard loads the dashboard at url in a window width px wide.
func openDashboard(t *testing.T, page *cdp, url string, width, height int) {
	t.Helper()
	if err := page.call("Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false,
	}, nil); err != nil {
		t.Fatal(err)
	}
	if err := page.call("Page.navigate", map[string]any{"url": url}, nil); err != nil {
		t.Fatal(err)
	}
}

// waitUntil polls a JavaScript condition until it is true: the page
// updates on its own timer, so there is no event to wait on.
func waitUntil(t *testing.T, page *cdp, what, expr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		var ok bool
		if lastErr = page.eval(expr, &ok); lastErr == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not true after %v (%s, last error %v); page text:\n%s", what, timeout, expr, lastErr, pageText(page))
}

// evalString evaluates expr, which must give a string.
func evalString(t *testing.T, page *cdp, expr string) string {
	t.Helper()
	var s string
	if err := page.eval(expr, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// findCutJS lists every shown element whose content does not fit it: wider
// (or, when it clips, taller) than its box, whatever its overflow says, so
// that an ellipsis, a hidden overflow and a scrollbar all count.
const findCutJS = `(() => {
  const cut = [];
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (typeof el.className === "string" && el.className.trim() ? "." + el.className.trim().split(/\s+/).join(".") : "");
  for (const el of [document.documentElement, ...document.body.querySelectorAll("*")]) {
    if (el.closest("[hidden]") || el.getClientRects().length === 0) continue;
    const cs = getComputedStyle(el);
    if (cs.display === "inline") continue; // no box of its own: its block's box is checked
    const clips = cs.overflowX !== "visible" || cs.overflowY !== "visible" || cs.textOverflow !== "clip";
    if (el.scrollWidth > el.clientWidth || (clips && el.scrollHeight > el.clientHeight + 1)) {
      cut.push(name(el) + " (" + el.scrollWidth + "x" + el.scrollHeight + " in " + el.clientWidth + "x" + el.clientHeight + "): " +
        (el.innerText || "").trim().slice(0, 80).replace(/\s+/g, " "));
    }
  }
  return cut;
})()`

// TestDashboardFitsEveryWidth loads the dashboard with the data that cut
// it before (long names and reasons, eight-digit counters, several
// upstreams and routes, a proxy not ready) at the widths operators use,
// and finds no element whose content overflows it, and every number and
// reason shown in full.
func TestDashboardFitsEveryWidth(t *testing.T) {
	bin := findChromium(t)
	state := realisticState()
	reg := prometheus.NewRegistry()
	reg.MustRegister(newBusyTraffic(time.Now()))
	srv := httptest.NewServer(New(Options{Registry: reg, State: state, Loopback: true}))
	t.Cleanup(srv.Close)
	page := startBrowser(t, bin)

	for _, width := range []int{1024, 1440, 1920} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			openDashboard(t, page, srv.URL+"/", width, 900)
			waitUntil(t, page, "server rows", `document.querySelectorAll("tr.server").length === 8`, 20*time.Second)
			waitUntil(t, page, "rates", `document.getElementById("kpi-rps").textContent !== "0"`, 10*time.Second)
			waitUntil(t, page, "readiness", `!document.getElementById("ready-reason").hidden`, 10*time.Second)
			checkClean(t, page)

			// Every figure in full, as the API has it.
			if got := evalString(t, page, `document.getElementById("total-requests").textContent`); !regexp.MustCompile(`^3\d,\d{3},\d{3}$`).MatchString(got) {
				t.Errorf("total requests %q, want all of 34 million and some", got)
			}
			if got := evalString(t, page, `document.querySelector('tr.server[data-server^="payments-api-eu-west-1a"] .bout').textContent`); !regexp.MustCompile(`^9\d\d GB$`).MatchString(got) {
				t.Errorf("bytes out %q, want 9xx GB", got)
			}
			for _, c := range []struct{ what, expr, want string }{
				{"server's requests", `document.querySelector('tr.server[data-server^="payments-api-eu-west-1a"] .total').textContent`, "17,345,678"},
				{"in flight", `document.getElementById("kpi-inflight").textContent`, "12,345"},
				{"not ready reason", `document.getElementById("ready-reason").innerText`, state.notReady.Error()},
				{"open circuit", `document.querySelector('tr.server[data-server^="payments-api-eu-west-1b"] .state').textContent`, "circuit open"},
				{"its reason", `document.querySelector('tr.server[data-server^="payments-api-eu-west-1b"] .reason').innerText`,
					"5 consecutive failures (last: dial tcp 10.120.34.9:8443: connect: connection refused) · "},
				{"passive ejection", `document.querySelector('tr.server[data-server^="static-origin-b"] .state').textContent`, "ejected"},
			} {
				got := evalString(t, page, c.expr)
				if !strings.HasPrefix(got, c.want) {
					t.Errorf("%s: %q, want %q", c.what, got, c.want)
				}
			}
			// 404 and 429 traffic, in the totals and on their routes.
			for _, expr := range []string{
				`document.getElementById("kpi-404").textContent`,
				`document.getElementById("kpi-429").textContent`,
				`document.getElementById("kpi-4xx").textContent`,
				`document.querySelector('tr.route[data-route="payments-public-api"] td.nf').firstChild.textContent`,
				`document.querySelector('tr.route[data-route="payments-public-api"] td.lim').firstChild.textContent`,
				`document.querySelector('tr.route[data-route=""] td.nf').firstChild.textContent`,
				`document.querySelector('tr.server[data-server^="payments-api-eu-west-1a"] td.c4xx').textContent`,
			} {
				if got := evalString(t, page, expr); got == "0" || got == "0.0%" || got == "" {
					t.Errorf("%s = %q, want traffic", expr, got)
				}
			}
			if body := pageText(page); strings.Contains(body, "…") {
				t.Errorf("the page shows an ellipsis:\n%s", body)
			}

			var cut []string
			if err := page.eval(findCutJS, &cut); err != nil {
				t.Fatal(err)
			}
			for _, c := range cut {
				t.Errorf("content cut at %d px: %s", width, c)
			}
			saveFullScreenshot(t, page, width, fmt.Sprintf("dashboard-%d.png", width))
		})
	}
}

// saveFullScreenshot grows the window to the page's height and keeps a
// picture of all of it as a test artifact, for a human to look at.
func saveFullScreenshot(t *testing.T, page *cdp, width int, name string) {
	t.Helper()
	var h int
	if err := page.eval(`document.documentElement.scrollHeight`, &h); err != nil {
		t.Fatal(err)
	}
	if err := page.call("Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": h, "deviceScaleFactor": 1, "mobile": false,
	}, nil); err != nil {
		t.Fatal(err)
	}
	png, err := page.screenshot()
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", out)
}

// realisticState is a proxy as operators see it on a bad day: long
// generated names, every kind of trouble at once, and a readiness reason
// that runs long.
func realisticState() *fakeState {
	ago := time.Now().Add(-3 * time.Minute)
	check := func(ok bool, result string) *Check {
		return &Check{At: time.Now().Add(-2 * time.Second), OK: ok, Result: result, LatencyMS: 1234.5}
	}
	return &fakeState{
		notReady: errors.New("upstream payments-eu-west-1-production has no usable server (4 of 4 unhealthy, ejected, open or drained)"),
		ups: []Upstream{
			{Name: "payments-eu-west-1-production", Strategy: "least_latency", Servers: []Server{
				{Name: "payments-api-eu-west-1a-7f9c4d8b6-x2k9p.internal.example.com", URL: "https://10.120.33.17:8443/payments/v2",
					Weight: 100, Healthy: true, Usable: true, Reason: "status 200", Since: ago, InFlight: 12_000,
					Requests: 17_345_678, Failures: 1_234_567, LatencyEWMAms: 1234.56, Ramp: 1, Circuit: "closed",
					Ejections: 12_345, LastCheck: check(true, "status 200")},
				{Name: "payments-api-eu-west-1b-7f9c4d8b6-q8m3z.internal.example.com", URL: "https://10.120.34.9:8443/payments/v2",
					Weight: 100, Healthy: true, Usable: false, Since: ago,
					Reason:  "circuit open: 5 consecutive failures (last: dial tcp 10.120.34.9:8443: connect: connection refused)",
					Circuit: "open", CircuitReason: "5 consecutive failures (last: dial tcp 10.120.34.9:8443: connect: connection refused)",
					Requests: 9_876_543, InFlight: 345, LastCheck: check(true, "status 200")},
				{Name: "payments-api-eu-west-1c-7f9c4d8b6-z7t1w.internal.example.com", URL: "https://10.120.35.44:8443/payments/v2",
					Weight: 100, Healthy: false, Reason: "status 503 after 3 failed checks in a row (expected 200-399)", Since: ago,
					Requests: 4_567_890, Circuit: "half_open", CircuitReason: "probing after 30s open",
					LastCheck: check(false, "status 503 Service Unavailable")},
				{Name: "payments-api-eu-central-1a-backup-5d6e7f.internal.example.com", URL: "https://10.130.1.2:8443",
					Weight: 1, Backup: true, Healthy: true, Drained: true, Reason: "drained", Since: ago, Requests: 123,
					LastCheck: check(true, "status 200")},
			}},
			{Name: "static-assets-cdn-origin", Strategy: "round_robin", Servers: []Server{
				{Name: "static-origin-a.storage.example.net", URL: "http://[2001:db8:85a3::8a2e:370:7334]:8080", Weight: 1,
					Healthy: true, Usable: true, Requests: 2_901_245, InFlight: 0, LastCheck: check(true, "status 204")},
				{Name: "static-origin-b.storage.example.net", URL: "http://static-origin-b.storage.example.net:8080", Weight: 1,
					Healthy: true, Usable: false, Ejections: 7,
					Reason: "ejected: 5 consecutive 5xx answers (502, 502, 504, 502, 503) within 10s, for 4m0s (doubled 3 times)",
					Since:  ago, EjectedUntil: time.Now().Add(4 * time.Minute), LastCheck: check(true, "status 204")},
			}},
			{Name: "default", Strategy: "round_robin", Servers: []Server{
				{Name: "web-1", URL: "http://127.0.0.1:9003", Weight: 1, Healthy: true, Usable: true, Requests: 1},
				{Name: "web-2", URL: "http://127.0.0.1:9004", Weight: 1, Healthy: true, Usable: true},
			}},
		},
		routes: []Route{
			{Name: "payments-public-api", Host: "api.payments.eu-west-1.example.com", PathPrefix: "/v2/payments/transactions",
				Upstream: "payments-eu-west-1-production", StripPrefix: true,
				RateLimit: &RateLimit{RequestsPerSecond: 12345.5, Burst: 100000, Key: "header:X-Api-Key-Identifier", Store: "redis"}},
			{Name: "payments-webhooks", Host: "hooks.payments.eu-west-1.example.com", Upstream: "payments-eu-west-1-production",
				RateLimit: &RateLimit{RequestsPerSecond: 50, Burst: 100, Key: "ip", Store: "memory"}},
			{Name: "static", PathPrefix: "/static/assets/v20260102-1a2b3c4d", Upstream: "static-assets-cdn-origin"},
			{Name: "default", Upstream: "default"},
		},
	}
}

// busyTraffic is a registry's worth of request metrics for realisticState,
// under the metric names /api/stats reads, growing at thousands of
// requests a second from counters already in the millions: the figures
// that did not fit before.
type busyTraffic struct {
	start time.Time
	req   *prometheus.Desc
	dur   *prometheus.Desc
	in    *prometheus.Desc
	out   *prometheus.Desc
	lim   *prometheus.Desc
}

func newBusyTraffic(start time.Time) *busyTraffic {
	return &busyTraffic{
		start: start,
		req:   prometheus.NewDesc(metrics.RequestsTotal, "requests", []string{"route", "upstream", "server", "code"}, nil),
		dur:   prometheus.NewDesc(metrics.RequestDuration, "duration", []string{"route", "upstream", "server"}, nil),
		in:    prometheus.NewDesc(metrics.ServerRequestBytes, "bytes in", []string{"upstream", "server"}, nil),
		out:   prometheus.NewDesc(metrics.ServerResponseBytes, "bytes out", []string{"upstream", "server"}, nil),
		lim:   prometheus.NewDesc(metrics.RateLimitedTotal, "limited", []string{"route"}, nil),
	}
}

// Describe sends nothing: an unchecked collector, as its series are made
// up at each scrape.
func (b *busyTraffic) Describe(chan<- *prometheus.Desc) {}

func (b *busyTraffic) Collect(ch chan<- prometheus.Metric) {
	secs := time.Since(b.start).Seconds()
	grow := func(base, perSec float64) float64 { return base + perSec*secs }
	const (
		a   = "payments-api-eu-west-1a-7f9c4d8b6-x2k9p.internal.example.com"
		pay = "payments-eu-west-1-production"
		st  = "static-assets-cdn-origin"
	)
	series := []struct {
		route, upstream, server, code string
		base, rate                    float64
	}{
		{"payments-public-api", pay, a, "200", 17_000_000, 9_000},
		{"payments-public-api", pay, a, "404", 300_000, 800},
		{"payments-public-api", pay, a, "502", 45_678, 150},
		{"payments-public-api", pay, "", "429", 2_000_000, 1_200},
		{"payments-webhooks", pay, "", "503", 1_234_567, 300},
		{"static", st, "static-origin-a.storage.example.net", "200", 2_900_000, 2_500},
		{"static", st, "static-origin-a.storage.example.net", "304", 1_245, 40},
		{"", "", "", "404", 11_209_866, 75},
	}
	type hist struct{ route, upstream, server string }
	counts := map[hist]uint64{}
	for _, s := range series {
		v := grow(s.base, s.rate)
		ch <- prometheus.MustNewConstMetric(b.req, prometheus.CounterValue, v, s.route, s.upstream, s.server, s.code)
		counts[hist{s.route, s.upstream, s.server}] += uint64(v)
	}
	for h, n := range counts {
		buckets := map[float64]uint64{}
		for i, le := range metrics.DurationBuckets {
			buckets[le] = n * uint64(i+1) / uint64(len(metrics.DurationBuckets)+1)
		}
		ch <- prometheus.MustNewConstHistogram(b.dur, n, float64(n)*0.05, buckets, h.route, h.upstream, h.server)
	}
	ch <- prometheus.MustNewConstMetric(b.in, prometheus.CounterValue, grow(12_345_678_901, 4_500_000), pay, a)
	ch <- prometheus.MustNewConstMetric(b.out, prometheus.CounterValue, grow(987_654_321_012, 123_456_789), pay, a)
	ch <- prometheus.MustNewConstMetric(b.lim, prometheus.CounterValue, grow(2_000_000, 1_200), "payments-public-api")
}
