//go:build unix

package admin

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDashboardInBrowser loads the dashboard in headless Chromium against
// a real Metrics and a fake State, first idle and then while traffic
// flows, and saves a screenshot for a human to look at.
func TestDashboardInBrowser(t *testing.T) {
	bin := findChromium(t)
	f := newFixture(t, Options{Loopback: true})
	page := startBrowser(t, bin)

	if err := page.call("Emulation.setDeviceMetricsOverride", map[string]any{
		"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false,
	}, nil); err != nil {
		t.Fatal(err)
	}
	if err := page.call("Page.navigate", map[string]any{"url": f.srv.URL + "/"}, nil); err != nil {
		t.Fatal(err)
	}

	// waitFor polls a JavaScript condition until it is true: the page
	// updates on its own timer, so there is no event to wait on.
	waitFor := func(what, expr string, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		var lastErr error
		for time.Now().Before(deadline) {
			var ok bool
			if lastErr = page.eval(expr, &ok); lastErr == nil && ok {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: not true after %v (%s, last error %v); page text:\n%s", what, timeout, expr, lastErr, pageText(page))
	}
	text := func(id string) string {
		t.Helper()
		var s string
		if err := page.eval(`document.getElementById("`+id+`").textContent`, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}

	// Idle: every server row is there and the numbers are zeros.
	waitFor("server rows", `document.querySelectorAll("tr.server").length === 3`, 20*time.Second)
	waitFor("route rows", `document.querySelectorAll("tr.route").length === 2`, 10*time.Second)
	waitFor("second poll", `document.getElementById("window").textContent !== "0"`, 10*time.Second)
	if got := text("total-requests"); got != "0" {
		t.Errorf("idle total requests %q, want 0", got)
	}
	if got := text("kpi-rps"); got != "0" {
		t.Errorf("idle requests/s %q, want 0", got)
	}
	checkClean(t, page)

	// Traffic: the counters move while the page is open.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { sendTraffic(ctx, f) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	waitFor("requests counted", `document.getElementById("total-requests").textContent !== "0"`, 10*time.Second)
	first := text("total-requests")
	waitFor("request counter changes", `document.getElementById("total-requests").textContent !== "`+first+`"`, 10*time.Second)
	waitFor("requests/s shown", `document.getElementById("kpi-rps").textContent !== "0"`, 10*time.Second)
	waitFor("per-server rate", `document.querySelector('tr.server[data-server="a"] td.rps').firstChild.textContent !== "0"`, 10*time.Second)
	waitFor("latency shown", `document.getElementById("kpi-p99").textContent.endsWith("ms")`, 10*time.Second)
	var states []string
	if err := page.eval(`[...document.querySelectorAll("tr.server")].map(r => r.className)`, &states); err != nil {
		t.Fatal(err)
	}
	if want := []string{"server st-up", "server st-down", "server st-up"}; strings.Join(states, ",") != strings.Join(want, ",") {
		t.Errorf("row states %v, want %v", states, want)
	}
	checkClean(t, page)

	// Let a few more polls fill the window and the sparkline, then keep
	// a picture of the page as a test artifact.
	time.Sleep(3 * time.Second)
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
	out := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(png))
}

// checkClean fails on a page showing NaN or undefined, or the error banner.
func checkClean(t *testing.T, page *cdp) {
	t.Helper()
	body := pageText(page)
	for _, bad := range []string{"NaN", "undefined", "Infinity", "Cannot reach"} {
		if strings.Contains(body, bad) {
			t.Errorf("page shows %q:\n%s", bad, body)
		}
	}
}

func pageText(page *cdp) string {
	var s string
	if err := page.eval(`document.body.innerText`, &s); err != nil {
		return "(" + err.Error() + ")"
	}
	return s
}

// sendTraffic records requests through the real Metrics, as the proxy's
// middleware would, and moves the fake State's in-flight numbers, until
// ctx ends.
func sendTraffic(ctx context.Context, f *fixture) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	rnd := rand.New(rand.NewPCG(1, 2))
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		lat := time.Duration(rnd.ExpFloat64() * float64(8*time.Millisecond))
		code := 200
		if rnd.IntN(50) == 0 {
			code = 502
		}
		f.m.Observe("api", "api", "a", code, lat)
		if rnd.IntN(3) == 0 {
			f.m.Observe("default", "default", "c", 200, lat/2)
		}
		if rnd.IntN(40) == 0 {
			f.m.RateLimited("api")
			f.m.Observe("api", "api", "", 429, 0)
		}
		f.state.mu.Lock()
		f.state.ups[0].Servers[0].InFlight = int64(rnd.IntN(6))
		f.state.mu.Unlock()
	}
}
