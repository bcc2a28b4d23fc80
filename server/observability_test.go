package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func scrape(t *testing.T, adminAddr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return mfs
}

// value finds the sample of family name whose labels include want.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetricsCountTheTrafficSent(t *testing.T) {
	a := backend(t, "a", nil)
	b := backend(t, "b", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	p := startProxy(t, fmt.Sprintf(`admin: {listen: 127.0.0.1:0}
health_checks: {enabled: false}
servers: [{url: %s, name: a}, {url: %s, name: b}]
upstreams:
  limited: {servers: [{url: %s, name: a}], health_checks: {enabled: false}}
routes:
  - name: api
    match: {path_prefix: /api}
    upstream: limited
    rate_limit: {requests_per_second: 0.01, burst: 2}
`, a.URL, b.URL, a.URL))
	for range 10 {
		get(t, http.DefaultClient, "http://"+p.Addr()+"/")
	}
	for range 5 {
		get(t, http.DefaultClient, "http://"+p.Addr()+"/api/x")
	}
	mfs := scrape(t, p.AdminAddr())
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"proxy_requests_total", map[string]string{"route": "default", "server": "a", "code": "200"}, 5},
		{"proxy_requests_total", map[string]string{"route": "default", "server": "b", "code": "500"}, 5},
		{"proxy_requests_total", map[string]string{"route": "api", "upstream": "limited", "server": "a", "code": "200"}, 2},
		{"proxy_request_duration_seconds", map[string]string{"route": "default", "server": "a"}, 5},
		{"proxy_rate_limited_total", map[string]string{"route": "api"}, 3},
		{"proxy_upstream_server_up", map[string]string{"upstream": "default", "server": "b"}, 1},
		{"proxy_upstream_server_in_flight", map[string]string{"upstream": "default", "server": "a"}, 0},
	}
	for _, c := range checks {
		got, ok := value(mfs, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("%s missing from /metrics: the Go and process collectors are not registered", name)
		}
	}
	// A reload is counted by result.
	if err := p.Apply(p.rt.Load().cfg); err != nil {
		t.Fatal(err)
	}
	if got, _ := value(scrape(t, p.AdminAddr()), "proxy_config_reloads_total", map[string]string{"result": "success"}); got != 1 {
		t.Errorf("proxy_config_reloads_total{result=success} = %v after one reload", got)
	}
}

func TestAdminReadyzAndDrain(t *testing.T) {
	a := backend(t, "a", nil)
	p := startProxy(t, fmt.Sprintf("admin: {listen: 127.0.0.1:0}\nhealth_checks: {enabled: false}\nservers: [{url: %s, name: a}]\n", a.URL))
	base := "http://" + p.AdminAddr()
	if status, _, _ := get(t, http.DefaultClient, base+"/readyz"); status != 200 {
		t.Fatalf("/readyz with a healthy server: %d", status)
	}
	resp, err := http.Post(base+"/api/upstreams/default/servers/a/drain", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("drain: %d", resp.StatusCode)
	}
	status, body, _ := get(t, http.DefaultClient, base+"/readyz")
	if status != 503 || !strings.Contains(body, "default") {
		t.Errorf("/readyz with the only server drained: %d %q", status, body)
	}
	if status, _, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/"); status != 503 {
		t.Errorf("proxying with the only server drained: %d, want 503", status)
	}
	_, api, _ := get(t, http.DefaultClient, base+"/api/upstreams")
	if !strings.Contains(api, `"drained": true`) && !strings.Contains(api, `"drained":true`) {
		t.Errorf("/api/upstreams does not show the drain: %s", api)
	}
	resp, _ = http.Post(base+"/api/upstreams/default/servers/a/enable", "", nil)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if status, _, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/"); status != 200 {
		t.Errorf("after enable: %d", status)
	}
}

func TestHealthChecksAreMeasured(t *testing.T) {
	a := backend(t, "a", nil)
	p := startProxy(t, fmt.Sprintf("admin: {listen: 127.0.0.1:0}\nhealth_checks: {interval: 1h}\nservers: [{url: %s, name: a}]\n", a.URL))
	waitFor(t, "the first health check in /metrics", func() bool {
		n, ok := value(scrape(t, p.AdminAddr()), "proxy_health_check_duration_seconds",
			map[string]string{"upstream": "default", "server": "a", "result": "success"})
		return ok && n >= 1
	})
}

// Each server's body bytes are counted: what clients sent (fixed-length
// or chunked, once however many tries carried it) and what they got back.
func TestMetricsCountServerBytes(t *testing.T) {
	reply := strings.Repeat("r", 1000)
	a := backend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, reply)
	})
	dead := backend(t, "dead", nil)
	dead.Close() // refuses connections: the request goes to a
	p := startProxy(t, fmt.Sprintf(`admin: {listen: 127.0.0.1:0}
retries: {attempts: 1}
servers: [{url: %s, name: dead}, {url: %s, name: a}]
`, dead.URL, a.URL))
	url := "http://" + p.Addr() + "/"
	post := func(body io.Reader) {
		t.Helper()
		res, err := http.Post(url, "text/plain", body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != reply {
			t.Fatalf("POST: %d %q", res.StatusCode, b)
		}
	}
	for range 2 {
		post(strings.NewReader(strings.Repeat("x", 3000)))                 // Content-Length
		post(io.MultiReader(strings.NewReader(strings.Repeat("y", 2000)))) // chunked
		if code, body, _ := get(t, http.DefaultClient, url); code != 200 || body != reply {
			t.Fatalf("GET: %d %q", code, body)
		}
	}
	mfs := scrape(t, p.AdminAddr())
	for _, c := range []struct {
		name string
		want float64
	}{
		{"proxy_upstream_server_request_bytes_total", 2 * 5000},
		{"proxy_upstream_server_response_bytes_total", 6 * 1000},
	} {
		if got, ok := value(mfs, c.name, map[string]string{"upstream": "default", "server": "a"}); got != c.want {
			t.Errorf("%s{server=a} = %v (found %v), want %v", c.name, got, ok, c.want)
		}
		if got, _ := value(mfs, c.name, map[string]string{"upstream": "default", "server": "dead"}); got != 0 {
			t.Errorf("%s{server=dead} = %v for a server that never answered", c.name, got)
		}
	}
}
