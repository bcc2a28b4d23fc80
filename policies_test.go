package main

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
