package main

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Every built-in policy through the binary: a route each, one request
// that the policy lets through or changes and one it answers itself, and
// the refusals counted by route and policy.
func TestPoliciesThroughTheBinary(t *testing.T) {
	page := strings.Repeat("<p>compress me</p>", 200)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "backend/1.0")
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Set("X-Env", r.Header.Get("X-Env"))
		w.Header().Set("X-Had-Auth", fmt.Sprint(r.Header.Get("Authorization") != ""))
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Body", fmt.Sprint(n))
		io.WriteString(w, page)
	}))
	t.Cleanup(backend.Close)
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	addr, admin := freePort(t), freePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`listen: %q
admin: {listen: %q}
health_checks: {enabled: false}
logging: {access_log: "off"}
servers: [{url: %q}]
routes:
  - {name: headers, match: {path_prefix: /headers}, upstream: default, policies: [{headers: {request: {set: {X-Env: prod}}, response: {remove: [Server], set: {X-Frame-Options: DENY}}}}]}
  - {name: redirect, match: {path_prefix: /old-site}, upstream: default, policies: [{redirect: {to: "https://{host}/new{uri}", code: 308}}]}
  - {name: rewrite, match: {path_prefix: /v1}, upstream: default, policies: [{rewrite: {path_regex: "^/v1/(.*)", replace: "/api/$1"}}]}
  - {name: ipf, match: {path_prefix: /internal}, upstream: default, policies: [{ip_filter: {deny: [127.0.0.0/8]}}]}
  - {name: auth, match: {path_prefix: /admin}, upstream: default, policies: [{basic_auth: {realm: ops, users: {alice: '%s'}}}]}
  - {name: cors, match: {path_prefix: /cors}, upstream: default, policies: [{cors: {origins: ["https://app.example"]}}]}
  - {name: upload, match: {path_prefix: /upload}, upstream: default, policies: [{max_body: 1KiB}]}
  - {name: gz, match: {path_prefix: /gz}, upstream: default, policies: [{compress: {algorithms: [gzip]}}]}
`, addr, admin, backend.URL, hash))
	p := start(t, "-config", cfg)
	p.waitLog(t, "proxy listening")
	base := "http://" + addr
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, body io.Reader, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, body)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}

	if res := do("GET", "/headers", nil, nil); res.Header.Get("X-Env") != "prod" || res.Header.Get("Server") != "" || res.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers: %v", res.Header)
	}
	if res := do("GET", "/old-site/a?b=1", nil, nil); res.StatusCode != 308 || res.Header.Get("Location") != "https://"+addr+"/new/old-site/a?b=1" {
		t.Errorf("redirect: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if res := do("GET", "/v1/users", nil, nil); res.Header.Get("X-Path") != "/api/users" {
		t.Errorf("rewrite: the server saw %q", res.Header.Get("X-Path"))
	}
	if res := do("GET", "/internal/x", nil, nil); res.StatusCode != 403 || res.Header.Get("X-Path") != "" {
		t.Errorf("ip_filter: %d, server saw %q", res.StatusCode, res.Header.Get("X-Path"))
	}
	if res := do("GET", "/admin", nil, nil); res.StatusCode != 401 || !strings.Contains(res.Header.Get("WWW-Authenticate"), `realm="ops"`) {
		t.Errorf("basic_auth without credentials: %d %v", res.StatusCode, res.Header)
	}
	req, _ := http.NewRequest("GET", base+"/admin", nil)
	req.SetBasicAuth("alice", "pw")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 || res.Header.Get("X-Had-Auth") != "false" {
		t.Errorf("basic_auth with credentials: %v %v", err, res)
	} else {
		res.Body.Close()
	}
	if res := do("OPTIONS", "/cors", nil, map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}); res.StatusCode != 204 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("cors preflight: %d %v", res.StatusCode, res.Header)
	}
	if res := do("OPTIONS", "/cors", nil, map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}); res.StatusCode != 403 {
		t.Errorf("cors preflight from another origin: %d", res.StatusCode)
	}
	if res := do("POST", "/upload", strings.NewReader(strings.Repeat("x", 1024)), nil); res.StatusCode != 200 || res.Header.Get("X-Body") != "1024" {
		t.Errorf("max_body at the limit: %d %v", res.StatusCode, res.Header.Get("X-Body"))
	}
	if res := do("POST", "/upload", strings.NewReader(strings.Repeat("x", 1025)), nil); res.StatusCode != 413 || res.Header.Get("X-Body") != "" {
		t.Errorf("max_body over the limit: %d, server read %q", res.StatusCode, res.Header.Get("X-Body"))
	}
	// A chunked body over the limit: cut, answered 413, and never blamed
	// on the server.
	if res := do("POST", "/upload", io.MultiReader(strings.NewReader(strings.Repeat("x", 1000)), strings.NewReader(strings.Repeat("y", 1000))), nil); res.StatusCode != 413 {
		t.Errorf("max_body, chunked over the limit: %d", res.StatusCode)
	}
	res := do("GET", "/gz", nil, map[string]string{"Accept-Encoding": "gzip"})
	if res.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("compress: encoding %q", res.Header.Get("Content-Encoding"))
	} else if z, err := gzip.NewReader(res.Body); err != nil {
		t.Error(err)
	} else if b, err := io.ReadAll(z); err != nil || string(b) != page {
		t.Errorf("compress: %d bytes decoded (%v), want %d", len(b), err, len(page))
	}

	metrics := fetchPath(t, admin, "/metrics")
	for _, want := range []string{
		`proxy_policy_rejections_total{policy="ip_filter",route="ipf"} 1`,
		`proxy_policy_rejections_total{policy="basic_auth",route="auth"} 1`,
		`proxy_policy_rejections_total{policy="cors",route="cors"} 1`,
		`proxy_policy_rejections_total{policy="max_body",route="upload"} 2`,
		`proxy_requests_total{code="403",route="ipf",server="",upstream="default"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(metrics, `code="502"`) {
		t.Error("a policy's refusal was answered 502")
	}
}

func fetchPath(t *testing.T, addr, path string) string {
	t.Helper()
	res, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// forward_auth through the binary, against an auth server of the test: a
// 2xx lets the request through with copy_headers reaching the backend (a
// client's own value of them replaced), a 401 or 403 goes back to the
// client as the auth server sent it, body included, and is counted.
func TestForwardAuthThroughTheBinary(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user=%s tenant=%s", r.Header.Get("X-User"), r.Header.Get("X-Tenant"))
	}))
	t.Cleanup(backend.Close)
	var asked atomic.Value
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(r.Method + " " + r.Header.Get("X-Forwarded-Method") + " " + r.Header.Get("X-Forwarded-Uri"))
		switch r.Header.Get("Authorization") {
		case "Bearer alice":
			w.Header().Set("X-User", "alice")
			w.Header().Set("X-Tenant", "blue")
			w.WriteHeader(http.StatusNoContent)
		case "Bearer mallory":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"error":"mallory may not"}`)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="app"`)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, "log in first")
		}
	}))
	t.Cleanup(auth.Close)
	addr, admin := freePort(t), freePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`listen: %q
admin: {listen: %q}
health_checks: {enabled: false}
logging: {access_log: "off"}
servers: [{url: %q}]
routes:
  - name: app
    match: {path_prefix: /}
    upstream: default
    policies: [{forward_auth: {url: %q, copy_headers: [X-User, X-Tenant]}}]
`, addr, admin, backend.URL, auth.URL+"/check"))
	p := start(t, "-config", cfg)
	p.waitLog(t, "proxy listening")
	do := func(token string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+addr+"/orders?id=7", strings.NewReader("order"))
		req.Header.Set("X-User", "root") // a client may not vouch for itself
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	if code, body, _ := do("alice"); code != 200 || body != "user=alice tenant=blue" {
		t.Errorf("allowed: %d %q, want the backend to see the auth server's X-User and X-Tenant", code, body)
	}
	if got, _ := asked.Load().(string); got != "GET POST /orders?id=7" {
		t.Errorf("the auth server was asked %q", got)
	}
	if code, body, h := do(""); code != 401 || body != "log in first" || h.Get("WWW-Authenticate") != `Bearer realm="app"` {
		t.Errorf("no credentials: %d %q %v, want the auth server's 401 as it came", code, body, h)
	}
	if code, body, h := do("mallory"); code != 403 || body != `{"error":"mallory may not"}` || h.Get("Content-Type") != "application/json" {
		t.Errorf("refused: %d %q %v, want the auth server's 403 as it came", code, body, h)
	}
	metrics := fetchPath(t, admin, "/metrics")
	if want := `proxy_policy_rejections_total{policy="forward_auth",route="app"} 2`; !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %s", want)
	}
}

// mirror through the binary: a mirror upstream that holds every copy
// holds no client; the copies carry the request, and their answers and
// failures show nowhere the client looks.
func TestMirrorThroughTheBinary(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "main got %s", b)
	}))
	t.Cleanup(backend.Close)
	release := make(chan struct{})
	var copies atomic.Int64
	var copied sync.Map
	shadow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/work" {
			return // a health check
		}
		b, _ := io.ReadAll(r.Body)
		copied.Store(r.Method+" "+r.URL.RequestURI()+" "+string(b), true)
		copies.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(shadow.Close)
	t.Cleanup(func() { close(release) })
	addr, admin := freePort(t), freePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`listen: %q
admin: {listen: %q}
health_checks: {enabled: false}
logging: {access_log: "off"}
servers: [{url: %q}]
upstreams:
  shadow:
    servers: [{url: %q}]
    health_checks: {enabled: false}
routes:
  - name: app
    match: {path_prefix: /}
    upstream: default
    policies: [{mirror: {upstream: shadow}}]
`, addr, admin, backend.URL, shadow.URL))
	p := start(t, "-config", cfg)
	p.waitLog(t, "proxy listening")
	const n = 20
	for i := range n {
		res, err := http.Post(fmt.Sprintf("http://%s/work?i=%d", addr, i), "text/plain", strings.NewReader(fmt.Sprint("job ", i)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if want := fmt.Sprint("main got job ", i); res.StatusCode != 200 || string(b) != want {
			t.Fatalf("request %d: %d %q, want %q", i, res.StatusCode, b, want)
		}
	}
	// Every client was answered; the copies are all still held.
	deadline := time.Now().Add(10 * time.Second)
	for copies.Load() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := copies.Load(); got != n {
		t.Fatalf("%d copies reached the mirror, want %d", got, n)
	}
	for i := range n {
		if _, ok := copied.Load(fmt.Sprintf("POST /work?i=%d job %d", i, i)); !ok {
			t.Errorf("copy %d did not carry the request's method, URI and body", i)
		}
	}
	metrics := fetchPath(t, admin, "/metrics")
	if want := fmt.Sprintf(`proxy_requests_total{code="200",route="app",server="%s",upstream="default"} %d`, strings.TrimPrefix(backend.URL, "http://"), n); !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %s", want)
	}
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "proxy_requests_total{") && (strings.Contains(line, `upstream="shadow"`) || !strings.Contains(line, `code="200"`)) {
			t.Errorf("a mirror copy's answer was counted as a client's: %s", line)
		}
	}
}
