package server

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/tbsphathuynh/proxy/upstream"
)

// loop sends GETs from several clients until stop is closed and counts
// the answers that were not 200.
func loop(t *testing.T, url string, stop <-chan struct{}) (total, failed *atomic.Int64, done func()) {
	total, failed = new(atomic.Int64), new(atomic.Int64)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				total.Add(1)
				if err != nil {
					failed.Add(1)
					t.Logf("request failed: %v", err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					t.Logf("request answered %d", resp.StatusCode)
				}
			}
		}()
	}
	return total, failed, wg.Wait
}

func TestRetriesHideADyingServer(t *testing.T) { bothPaths(t, testRetriesHideADyingServer) }

func testRetriesHideADyingServer(t *testing.T, extra string) {
	a, b, c := backend(t, "a", nil), backend(t, "b", nil), backend(t, "c", nil)
	p := startProxy(t, extra+`retries: {attempts: 2}
health_checks: {enabled: false, passive: {consecutive_failures: 3}}
servers:
`+servers(a, b, c))
	stop := make(chan struct{})
	total, failed, wait := loop(t, "http://"+p.Addr()+"/", stop)
	waitFor(t, "traffic", func() bool { return total.Load() > 100 })
	c.CloseClientConnections()
	c.Close()
	n := total.Load()
	waitFor(t, "more traffic after the server died", func() bool { return total.Load() > n+300 })
	close(stop)
	wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed while a server died; want 0 with retries on", failed.Load(), total.Load())
	}
}

func TestRetryBudgetCapsRetries(t *testing.T) {
	var hits atomic.Int64
	failing := func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	a, b, c := backend(t, "a", failing), backend(t, "b", failing), backend(t, "c", failing)
	p := startProxy(t, `retries: {attempts: 2, budget: 0.1, min_per_second: 1, backoff: 1ms}
health_checks: {enabled: false}
servers:
`+servers(a, b, c))
	const requests = 500
	start := time.Now()
	for range requests {
		status, _, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/")
		if status != 503 {
			t.Fatalf("status %d, want the servers' 503", status)
		}
	}
	retries := hits.Load() - requests
	seconds := int64(time.Since(start)/time.Second) + 1
	limit := requests/10 + 10*min(seconds, 10) // 10% plus the floor over the window
	if retries > limit {
		t.Errorf("%d retries for %d requests; the budget allows %d", retries, requests, limit)
	}
	if retries == 0 {
		t.Error("no retries at all: the budget should allow some")
	}
}

func TestPOSTRetriedOnlyWhenItNeverReachedAServer(t *testing.T) {
	var bodies []string
	var mu sync.Mutex
	record := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			bodies = append(bodies, string(b))
			mu.Unlock()
			w.WriteHeader(status)
		}
	}
	refused := backend(t, "refused", nil)
	refused.Close()

	t.Run("connection refused: retried with the same body", func(t *testing.T) {
		bodies = nil
		ok := backend(t, "ok", record(200))
		p := startProxy(t, "retries: {attempts: 1}\nhealth_checks: {enabled: false}\nservers:\n"+servers(refused, ok))
		resp, err := http.Post("http://"+p.Addr()+"/", "text/plain", strings.NewReader("order #1"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || len(bodies) != 1 || bodies[0] != "order #1" {
			t.Errorf("status %d, server saw %q; want 200 and the body once", resp.StatusCode, bodies)
		}
	})
	t.Run("reached a server: never retried", func(t *testing.T) {
		bodies = nil
		bad, ok := backend(t, "bad", record(502)), backend(t, "ok", record(200))
		p := startProxy(t, "retries: {attempts: 1}\nhealth_checks: {enabled: false}\nservers:\n"+servers(bad, ok))
		resp, err := http.Post("http://"+p.Addr()+"/", "text/plain", strings.NewReader("order #2"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 502 || len(bodies) != 1 {
			t.Errorf("status %d, servers saw %d requests; want the 502 and one request", resp.StatusCode, len(bodies))
		}
	})
	t.Run("GET with a retry status: tried on another server", func(t *testing.T) {
		bodies = nil
		bad, ok := backend(t, "bad", record(503)), backend(t, "ok", record(200))
		p := startProxy(t, "retries: {attempts: 1}\nhealth_checks: {enabled: false}\nservers:\n"+servers(bad, ok))
		status, _, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/")
		if status != 200 || len(bodies) != 2 {
			t.Errorf("status %d after %d tries, want 200 after 2", status, len(bodies))
		}
	})
}

func TestCircuitBreakerOpensHalfOpensAndCloses(t *testing.T) {
	var healthy atomic.Bool
	a := backend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(500)
		}
	})
	p := startProxy(t, `circuit_breaker: {consecutive_failures: 3, open_time: 300ms}
health_checks: {enabled: false}
servers:
`+servers(a))
	srv := p.rt.Load().upstreams["default"].pool.Servers[0]
	url := "http://" + p.Addr() + "/"
	for range 3 {
		if status, _, _ := get(t, http.DefaultClient, url); status != 500 {
			t.Fatalf("status %d, want the server's 500", status)
		}
	}
	if srv.Circuit() != upstream.CircuitOpen {
		t.Fatalf("circuit %s after 3 failures, want open", srv.Circuit())
	}
	if snap := p.rt.Load().upstreams["default"].pool.Snapshot(time.Now())[0]; snap.Circuit != "open" || !strings.Contains(snap.CircuitReason, "3 consecutive failures") {
		t.Errorf("snapshot circuit %q reason %q", snap.Circuit, snap.CircuitReason)
	}
	if status, _, _ := get(t, http.DefaultClient, url); status != 503 {
		t.Errorf("with the only circuit open: %d, want 503", status)
	}
	waitFor(t, "half-open", func() bool { return srv.Circuit() == upstream.CircuitHalfOpen })
	healthy.Store(true)
	if status, _, _ := get(t, http.DefaultClient, url); status != 200 {
		t.Errorf("probe through the half-open circuit: %d", status)
	}
	if srv.Circuit() != upstream.CircuitClosed {
		t.Errorf("circuit %s after a successful probe, want closed", srv.Circuit())
	}
}

func TestFallbackAnswers(t *testing.T) {
	dead := backend(t, "dead", nil)
	dead.Close()
	maint := backend(t, "maintenance", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "maintenance page for "+r.URL.Path)
	})
	p := startProxy(t, fmt.Sprintf(`health_checks: {enabled: false}
servers: [{url: %s}]
upstreams:
  app: {servers: [{url: %s}], health_checks: {enabled: false}}
  maint: {servers: [{url: %s}], health_checks: {enabled: false}}
routes:
  - match: {path_prefix: /static}
    upstream: app
    fallback: {status: 503, body: "back soon", headers: {Retry-After: "120"}}
  - match: {path_prefix: /app}
    upstream: app
    fallback: {upstream: maint}
`, dead.URL, dead.URL, maint.URL))
	status, body, h := get(t, http.DefaultClient, "http://"+p.Addr()+"/static/x")
	if status != 503 || body != "back soon" || h.Get("Retry-After") != "120" {
		t.Errorf("static fallback: %d %q Retry-After %q", status, body, h.Get("Retry-After"))
	}
	status, body, _ = get(t, http.DefaultClient, "http://"+p.Addr()+"/app/page")
	if status != 200 || body != "maintenance page for /app/page" {
		t.Errorf("fallback upstream: %d %q", status, body)
	}
}

func TestReloadUnderLoadLosesNothing(t *testing.T) {
	a, b, c := backend(t, "a", nil), backend(t, "b", nil), backend(t, "c", nil)
	p := startProxy(t, "servers:\n"+servers(a, b))
	stop := make(chan struct{})
	total, failed, wait := loop(t, "http://"+p.Addr()+"/", stop)
	for i := range 20 {
		set := []*httptest.Server{b, c}
		if i%2 == 1 {
			set = []*httptest.Server{a, b}
		}
		n := total.Load()
		// A changed client timeout also replaces the main listener's
		// http.Server on the same socket every time.
		reloadYAML(t, p, fmt.Sprintf("client: {read_header_timeout: %ds}\nservers:\n", 5+i%2)+servers(set...))
		waitFor(t, "traffic after a reload", func() bool { return total.Load() > n+20 })
	}
	close(stop)
	wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed across 20 reloads", failed.Load(), total.Load())
	}
}

func TestWebSocketSurvivesReload(t *testing.T) {
	ws := backend(t, "ws", websocket.Handler(func(c *websocket.Conn) { io.Copy(c, c) }).ServeHTTP)
	other := backend(t, "other", nil)
	// A WebSocket handler answers a plain GET with 400: no active checks.
	p := startProxy(t, "health_checks: {enabled: false}\nservers:\n"+servers(ws))
	conn, err := websocket.Dial("ws://"+p.Addr()+"/echo", "", "http://"+p.Addr()+"/")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reloadYAML(t, p, "health_checks: {enabled: false}\nservers:\n"+servers(ws)+fmt.Sprintf("upstreams: {extra: {servers: [{url: %s}]}}\nroutes: [{match: {path_prefix: /extra}, upstream: extra}]\n", other.URL))
	websocket.Message.Send(conn, "after reload")
	var got string
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := websocket.Message.Receive(conn, &got); err != nil || got != "after reload" {
		t.Errorf("WebSocket after a reload: %q, %v", got, err)
	}
}

func TestReloadMovesTheListener(t *testing.T) {
	a := backend(t, "a", nil)
	p := startProxy(t, "servers:\n"+servers(a))
	oldAddr := p.Addr()
	newAddr := freeAddr(t)
	reloadYAML(t, p, "listen: "+newAddr+"\nservers:\n"+servers(a), "listen:")
	if status, body, _ := get(t, http.DefaultClient, "http://"+newAddr+"/"); status != 200 || body != "a" {
		t.Errorf("new address: %d %q", status, body)
	}
	waitFor(t, "the old listener to close", func() bool {
		resp, err := http.Get("http://" + oldAddr + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	})
}

func TestPerTryTimeoutMovesOnToAnotherServer(t *testing.T) {
	slow := backend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	fast := backend(t, "fast", nil)
	p := startProxy(t, "retries: {attempts: 1, per_try_timeout: 100ms}\nhealth_checks: {enabled: false}\nservers:\n"+servers(slow, fast))
	start := time.Now()
	status, body, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/")
	if status != 200 || body != "fast" {
		t.Errorf("got %d %q, want the fast server's answer after the slow one timed out", status, body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v: the per-try timeout did not cut the slow attempt", d)
	}
}

func TestServerStateSurvivesReload(t *testing.T) {
	a, b := backend(t, "a", nil), backend(t, "b", nil)
	yaml := "circuit_breaker: {open_time: 1h}\nservers:\n" + servers(a, b)
	p := startProxy(t, yaml)
	old := p.rt.Load().upstreams["default"].pool.Servers
	now := time.Now()
	old[0].SetHealthy(false, "test: marked down", now)
	old[1].SetCircuit(upstream.CircuitClosed, upstream.CircuitOpen, "test: opened", now)
	reloadYAML(t, p, yaml+"retries: {attempts: 1}\n")
	cur := p.rt.Load().upstreams["default"].pool
	if cur.Servers[0] == old[0] {
		t.Fatal("the reload did not build new servers; the test proves nothing")
	}
	if cur.Servers[0].Healthy() || cur.Servers[1].Circuit() != upstream.CircuitOpen {
		t.Errorf("after reload: healthy %v, circuit %s; want the down server still down and the open circuit still open",
			cur.Servers[0].Healthy(), cur.Servers[1].Circuit())
	}
	if len(cur.Available()) != 0 {
		t.Errorf("available after reload: %d servers, want none", len(cur.Available()))
	}
}

func TestMaxConnectionsHoldsUnderConcurrency(t *testing.T) {
	var cur, peak atomic.Int64
	release := make(chan struct{})
	slow := backend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		cur.Add(-1)
	})
	p := startProxy(t, fmt.Sprintf("servers: [{url: %s, max_connections: 2}]\n", slow.URL))
	var wg sync.WaitGroup
	var full atomic.Int64
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get("http://" + p.Addr() + "/")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == 503 {
				full.Add(1)
			}
		}()
	}
	waitFor(t, "8 requests refused as full", func() bool { return full.Load() == 8 })
	// The 2 let through may still be on their way to the server.
	waitFor(t, "2 requests at the server", func() bool { return cur.Load() == 2 })
	close(release)
	wg.Wait()
	if peak.Load() != 2 {
		t.Errorf("server saw %d requests at once, max_connections is 2", peak.Load())
	}
}

func TestFullServerPassesRequestsToTheNext(t *testing.T) {
	release := make(chan struct{})
	var busyHits atomic.Int64
	busy := backend(t, "busy", func(w http.ResponseWriter, r *http.Request) {
		busyHits.Add(1)
		<-release
	})
	spare := backend(t, "spare", nil)
	p := startProxy(t, fmt.Sprintf("servers: [{url: %s, max_connections: 1}, {url: %s}]\n", busy.URL, spare.URL))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.Get("http://" + p.Addr() + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, "the busy server to hold its one slot", func() bool { return busyHits.Load() == 1 })
	// Round robin would send every other request to the full server.
	for range 4 {
		if status, body, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/"); status != 200 || body != "spare" {
			t.Errorf("with the first server full: %d %q, want the spare's answer", status, body)
		}
	}
	close(release)
	<-done
}
