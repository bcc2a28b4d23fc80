package server

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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

// A mirror that never answers takes nothing from the client: every
// request is answered while the copies hang, and the copies do arrive.
func TestMirrorNeverHoldsTheClient(t *testing.T) {
	main := backend(t, "main", nil)
	release := make(chan struct{})
	var copies atomic.Int64
	var bodies atomic.Value
	shadow := backend(t, "shadow", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/x" {
			return // a health check
		}
		b, _ := io.ReadAll(r.Body)
		bodies.Store(string(b))
		copies.Add(1)
		<-release
	})
	t.Cleanup(func() { close(release) })
	p := startProxy(t, "servers: [{url: "+main.URL+"}]\nupstreams:\n  shadow:\n    servers: [{url: "+shadow.URL+"}]\n"+
		"routes:\n  - match: {path_prefix: /}\n    upstream: default\n    policies:\n      - mirror: {upstream: shadow}\n")
	c := &http.Client{Timeout: 10 * time.Second}
	for i := range 100 {
		res, err := c.Post("http://"+p.Addr()+"/x", "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != "main" {
			t.Fatalf("request %d: %d %q", i, res.StatusCode, b)
		}
	}
	waitFor(t, "the copies to reach the mirror", func() bool { return copies.Load() > 0 })
	if n := copies.Load(); n > 64 {
		t.Errorf("%d copies in flight at once, want at most 64", n)
	}
	if b, _ := bodies.Load().(string); b != "payload" {
		t.Errorf("the copy's body was %q", b)
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
