package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/tbsphathuynh/proxy/metrics"
	"github.com/tbsphathuynh/proxy/upstream"
)

// A sticky cookie keeps a client on one server across requests and a
// reload, and moves it only when that server is down.
func TestStickySessionsHoldAcrossReloadAndMoveWhenDown(t *testing.T) {
	var srvs [3]*httptest.Server
	for i, name := range []string{"a", "b", "c"} {
		srvs[i] = backend(t, name, nil)
	}
	yaml := "health_checks: {enabled: false}\nretries: {attempts: 2}\n" +
		"servers:\n  - {url: " + srvs[0].URL + ", name: a}\n  - {url: " + srvs[1].URL + ", name: b}\n  - {url: " + srvs[2].URL + ", name: c}\n" +
		"routes:\n  - match: {path_prefix: /}\n    upstream: default\n    policies:\n      - sticky: {cookie: srv, ttl: 1h, http_only: true}\n"
	p, write := startProxyFile(t, yaml)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	base := "http://" + p.Addr() + "/"
	_, _, h := get(t, c, base)
	first := h.Get("X-Backend")
	if sc := h.Get("Set-Cookie"); !strings.Contains(sc, "srv=") || !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "Max-Age=3600") {
		t.Fatalf("first answer's Set-Cookie %q", sc)
	}
	for i := range 20 {
		_, _, h := get(t, c, base)
		if got := h.Get("X-Backend"); got != first {
			t.Fatalf("request %d went to %s, the cookie names %s", i, got, first)
		}
		if h.Get("Set-Cookie") != "" {
			t.Fatalf("request %d: the cookie was set again: %q", i, h.Get("Set-Cookie"))
		}
	}
	write(yaml + "timeouts: {connect: 2s}\n")
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, _, h := get(t, c, base); h.Get("X-Backend") != first {
		t.Fatalf("after a reload the client went to %s, not %s", h.Get("X-Backend"), first)
	}
	// Its server goes down: the client moves, and the cookie with it.
	for i, name := range []string{"a", "b", "c"} {
		if name == first {
			srvs[i].Close()
		}
	}
	_, _, h = get(t, c, base)
	moved := h.Get("X-Backend")
	if moved == first || moved == "" || h.Get("Set-Cookie") == "" {
		t.Fatalf("with its server down the client got %q (Set-Cookie %q)", moved, h.Get("Set-Cookie"))
	}
	for range 10 {
		if _, _, h := get(t, c, base); h.Get("X-Backend") != moved {
			t.Fatalf("after moving to %s the client went to %s", moved, h.Get("X-Backend"))
		}
	}
}

// gathered reads the sample of metric family name whose labels include
// want, from the proxy's registry.
func gathered(t *testing.T, s *Server, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := s.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	v, _ := value(byName, name, want)
	return v
}

// A mirror that never answers takes nothing from the client, shown by
// cause rather than by timing: the mirror upstream holds every copy until
// the test ends, and every client request is answered meanwhile, by the
// main upstream. The copies held never exceed the policy's 64; the rest
// are dropped and counted, not queued.
func TestMirrorNeverHoldsTheClient(t *testing.T) {
	main := backend(t, "main", nil)
	release := make(chan struct{})
	var held, maxHeld, copies atomic.Int64
	var bodies sync.Map
	shadow := backend(t, "shadow", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/x" {
			return // a health check of the shadow upstream
		}
		b, _ := io.ReadAll(r.Body)
		bodies.Store(string(b), true)
		copies.Add(1)
		n := held.Add(1)
		for m := maxHeld.Load(); n > m && !maxHeld.CompareAndSwap(m, n); m = maxHeld.Load() {
		}
		defer held.Add(-1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	p := startProxy(t, "servers: [{url: "+main.URL+"}]\nupstreams:\n  shadow:\n    servers: [{url: "+shadow.URL+"}]\n"+
		"routes:\n  - name: app\n    match: {path_prefix: /}\n    upstream: default\n    policies:\n      - mirror: {upstream: shadow}\n")
	c := &http.Client{}
	post := func(i int) {
		t.Helper()
		res, err := c.Post("http://"+p.Addr()+"/x", "text/plain", strings.NewReader(fmt.Sprint("payload ", i)))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != "main" {
			t.Fatalf("request %d: %d %q, want the main upstream's answer", i, res.StatusCode, b)
		}
	}
	const n = 100
	for i := range n {
		post(i)
	}
	dropped := func() float64 { return gathered(t, p, metrics.MirrorDroppedTotal, map[string]string{"route": "app"}) }
	// Every request was either copied (and is held now) or dropped.
	waitFor(t, "every request to be copied or dropped", func() bool { return copies.Load()+int64(dropped()) == n })
	if got := maxHeld.Load(); got > 64 {
		t.Errorf("%d copies held at once, want at most 64", got)
	}
	if got := dropped(); got < n-64 {
		t.Errorf("proxy_mirror_dropped_total = %v with every copy held, want at least %d", got, n-64)
	}
	if _, ok := bodies.Load("payload 0"); !ok {
		t.Errorf("the first request's copy did not carry its body")
	}
	// The mirror answers again: copies flow again.
	close(release)
	released = true
	waitFor(t, "the held copies to end", func() bool { return held.Load() == 0 })
	// The proxy's side of a copy ends after the mirror's handler: a
	// request may still find every slot taken, and is dropped; send until
	// one is copied.
	before := copies.Load()
	waitFor(t, "a copy once the mirror answers again", func() bool {
		post(n)
		return copies.Load() > before
	})
}

// A mirror upstream that fails every copy (connections reset) changes
// nothing the client sees: answers, the route's counts, the main
// server's health.
func TestMirrorFailuresCountAgainstNothingTheClientSees(t *testing.T) {
	main := backend(t, "main", nil)
	var copies atomic.Int64
	shadow := backend(t, "shadow", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/c" {
			return // a health check of the shadow upstream
		}
		copies.Add(1)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}
	})
	p := startProxy(t, "servers: [{url: "+main.URL+", name: main}]\nupstreams:\n  shadow:\n    servers: [{url: "+shadow.URL+", name: shadow}]\n"+
		"routes:\n  - name: app\n    match: {path_prefix: /}\n    upstream: default\n    policies:\n      - mirror: {upstream: shadow}\n")
	const n = 50
	for i := range n {
		if code, body, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/c"); code != 200 || body != "main" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	// The first copy fails, and the copies pause: the rest are dropped,
	// counted, and cost the client nothing.
	waitFor(t, "a copy to fail at the mirror", func() bool { return copies.Load() >= 1 })
	if c, d := copies.Load(), gathered(t, p, metrics.MirrorDroppedTotal, map[string]string{"route": "app"}); c >= n/2 || d < n/2 {
		t.Errorf("%d copies reached the failing mirror and %v were dropped; want the copies paused after the first failure", c, d)
	}
	if got := gathered(t, p, metrics.RequestsTotal, map[string]string{"route": "app", "code": "200"}); got != n {
		t.Errorf("proxy_requests_total{route=app,code=200} = %v, want %d", got, n)
	}
	mfs, _ := p.registry.Gather()
	for _, mf := range mfs {
		if mf.GetName() != metrics.RequestsTotal {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" && l.GetValue() != "200" || l.GetName() == "upstream" && l.GetValue() == "shadow" {
					t.Errorf("a mirror copy's failure reached the client's counts: %v", m.GetLabel())
				}
			}
		}
	}
	if sv := poolServers(p, "default")["main"]; sv == nil || !sv.Healthy() || sv.Failures() != 0 || sv.Circuit() != upstream.CircuitClosed {
		t.Errorf("the main server is not healthy after its mirror failed")
	}
}

// forward_auth: the auth service's 2xx lets the request through with the
// fields it vouches for; its refusal reaches the client as it came; an
// auth service that is down lets nothing through.
func TestForwardAuth(t *testing.T) {
	var seen atomic.Value
	app := backend(t, "app", func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("X-User"))
		io.WriteString(w, "app")
	})
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Forwarded-Uri") != "/private?x=1" || r.Header.Get("X-Forwarded-Method") != "GET" {
			w.WriteHeader(400)
			return
		}
		if r.Header.Get("Authorization") == "Bearer good" {
			w.Header().Set("X-User", "alice")
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="app"`)
		w.WriteHeader(401)
		io.WriteString(w, "log in first")
	}))
	t.Cleanup(auth.Close)
	p := startProxy(t, "servers: [{url: "+app.URL+"}]\nroutes:\n  - match: {path_prefix: /}\n    upstream: default\n    policies:\n      - forward_auth: {url: '"+auth.URL+"/check', copy_headers: [X-User]}\n")
	do := func(token, user string) (int, string, http.Header) {
		req, _ := http.NewRequest("GET", "http://"+p.Addr()+"/private?x=1", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if user != "" {
			req.Header.Set("X-User", user)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	if code, body, _ := do("good", "mallory"); code != 200 || body != "app" || seen.Load() != "alice" {
		t.Errorf("allowed: %d %q, the app saw X-User %v", code, body, seen.Load())
	}
	if code, body, h := do("bad", ""); code != 401 || body != "log in first" || h.Get("WWW-Authenticate") != `Bearer realm="app"` {
		t.Errorf("refused: %d %q %v", code, body, h)
	}
	auth.Close()
	if code, _, _ := do("good", ""); code != 503 {
		t.Errorf("auth service down: %d, want 503", code)
	}
}
