package server

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestRateLimitAnswers429WithHeaders(t *testing.T) {
	a := backend(t, "a", nil)
	p := startProxy(t, fmt.Sprintf(`servers: [{url: %s}]
upstreams:
  open: {servers: [{url: %s}]}
routes:
  - name: open
    match: {path_prefix: /open}
    upstream: open
rate_limit: {requests_per_second: 0.01, burst: 3}
`, a.URL, a.URL))
	base := "http://" + p.Addr()
	for i := range 3 {
		status, _, h := get(t, http.DefaultClient, base+"/")
		if status != 200 {
			t.Fatalf("request %d within the burst: %d", i+1, status)
		}
		if h.Get("RateLimit-Limit") != "3" || h.Get("RateLimit-Remaining") != strconv.Itoa(2-i) || h.Get("RateLimit-Reset") == "" {
			t.Errorf("request %d headers: limit %q remaining %q reset %q", i+1,
				h.Get("RateLimit-Limit"), h.Get("RateLimit-Remaining"), h.Get("RateLimit-Reset"))
		}
	}
	status, body, h := get(t, http.DefaultClient, base+"/")
	if status != 429 || h.Get("Retry-After") == "" || body == "" {
		t.Errorf("over the limit: %d Retry-After %q body %q, want 429 with Retry-After", status, h.Get("Retry-After"), body)
	}
	// Another client key has its own budget: a second route is not limited.
	for range 5 {
		status, _, h := get(t, http.DefaultClient, base+"/open")
		if status != 200 || h.Get("RateLimit-Limit") != "" {
			t.Fatalf("unlimited route: %d, RateLimit-Limit %q", status, h.Get("RateLimit-Limit"))
		}
	}
}

func TestRateLimitKeysByHeaderAndSurvivesReload(t *testing.T) {
	a := backend(t, "a", nil)
	yaml := fmt.Sprintf("servers: [{url: %s}]\nrate_limit: {requests_per_second: 0.01, burst: 2, key: \"header:X-Api-Key\"}\n", a.URL)
	p := startProxy(t, yaml)
	do := func(key string) int {
		req, _ := http.NewRequest("GET", "http://"+p.Addr()+"/", nil)
		req.Header.Set("X-Api-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, k := range []string{"alice", "alice", "bob", "bob"} {
		if s := do(k); s != 200 {
			t.Fatalf("%s within burst: %d", k, s)
		}
	}
	if s := do("alice"); s != 429 {
		t.Errorf("alice over her limit: %d, want 429", s)
	}
	// A reload with the same limit must not hand out a fresh burst.
	cfg := p.rt.Load().cfg
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if s := do("bob"); s != 429 {
		t.Errorf("bob after a reload: %d, want still limited", s)
	}
}

// A request refused with 429 is counted and logged under the route and
// upstream it matched, like any other answer of the route, on the direct
// lane as on the usual path.
func TestRateLimitedRequestsKeepTheirRoute(t *testing.T) {
	bothPaths(t, func(t *testing.T, extra string) {
		a := backend(t, "a", nil)
		var log logBuffer
		dir := t.TempDir()
		p := startProxyLogging(t, extra+fmt.Sprintf(`admin: {listen: "127.0.0.1:0"}
logging: {access_log: %s/access.log, format: json}
servers: [{url: %s}]
upstreams:
  api: {servers: [{url: %s, name: api-1}], health_checks: {enabled: false}}
routes:
  - name: limited
    match: {path_prefix: /api}
    upstream: api
    rate_limit: {requests_per_second: 0.01, burst: 1}
`, dir, a.URL, a.URL), &log)
		for _, want := range []int{200, 429} {
			if status, _, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/api/x"); status != want {
				t.Fatalf("status %d, want %d", status, want)
			}
		}
		mfs := scrape(t, p.AdminAddr())
		if n, _ := value(mfs, "proxy_requests_total", map[string]string{"route": "limited", "upstream": "api", "code": "429"}); n != 1 {
			t.Errorf("proxy_requests_total{route=limited,upstream=api,code=429} = %v, want 1", n)
		}
		waitFor(t, "the 429's access log line", func() bool {
			b, _ := os.ReadFile(dir + "/access.log")
			return strings.Contains(string(b), `"status":429`)
		})
		b, _ := os.ReadFile(dir + "/access.log")
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if strings.Contains(line, `"status":429`) && (!strings.Contains(line, `"route":"limited"`) || !strings.Contains(line, `"upstream":"api"`)) {
				t.Errorf("the 429's access log line lacks its route or upstream:\n%s", line)
			}
		}
	})
}
