package deploy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// The deadlines below are generous on purpose: the machine running the
// tests may be loaded, and each wait polls, so a fast run is not slowed.
const (
	startDeadline = 60 * time.Second       // a process answers
	dataDeadline  = 2 * time.Minute        // every query that should have data has it
	pollEvery     = 500 * time.Millisecond // between rounds of traffic and queries
)

// allowedEmpty lists the expressions (alert rules by name, dashboard
// queries by their text) that may return no data in this test, each with
// the reason. Everything else the alert rules and the dashboard query must
// return data under the test's traffic: an empty answer is a misspelt
// metric or label, or a selector the proxy never matches.
var allowedEmpty = map[string]string{
	"ProxyDown": "the proxy answers every scrape here, so up == 0 matches nothing; the scenario checks that up{job=\"proxy\"} itself has data",
}

// TestPrometheusScrapesRealProxy runs a real Prometheus against a real proxy
// under mixed traffic (2xx, 404, 429, 5xx from a server, 503 behind an open
// circuit breaker, a server that dies, a reload that fails) and checks that
// promtool accepts the rules and the proxy's /metrics, that Prometheus
// evaluates every alert rule without error, and that every PromQL
// expression of the alert rules and of the Grafana dashboard evaluates and
// returns data.
func TestPrometheusScrapesRealProxy(t *testing.T) {
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Skip("prometheus is not installed (Debian package prometheus; make test installs it): the alert rules and the Grafana dashboard are not evaluated against a running proxy")
	}
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("promtool is not installed (Debian package prometheus; make test installs it)")
	}

	// Backends: two steady servers, one that dies during the test, and one
	// that fails every request (but passes its health checks) so that its
	// circuit breaker opens.
	steady := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "ok")
	}
	good := httptest.NewServer(http.HandlerFunc(steady))
	t.Cleanup(good.Close)
	dying := httptest.NewServer(http.HandlerFunc(steady))
	t.Cleanup(dying.Close)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			io.WriteString(w, "ok")
			return
		}
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)

	listen, admin := freeAddr(t), freeAddr(t)
	cfgFile := filepath.Join(t.TempDir(), "proxy.yaml")
	cfg := fmt.Sprintf(`listen: %q
admin: {listen: %q}
logging: {level: warn, access_log: "off"}
servers:
  - {url: %q, name: good}
  - {url: %q, name: dying}
health_checks: {interval: 500ms, path: /health, healthy_threshold: 1, unhealthy_threshold: 2}
upstreams:
  flaky:
    servers:
      - {url: %q, name: failing}
    health_checks: {interval: 500ms, path: /health}
    circuit_breaker: {consecutive_failures: 2, open_time: 1h}
routes:
  - name: limited
    match: {path_prefix: /limited}
    rate_limit: {requests_per_second: 1, burst: 2}
  - name: flaky
    match: {path_prefix: /flaky}
    upstream: flaky
`, listen, admin, good.URL, dying.URL, failing.URL)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	proxy := startProcess(t, "proxy", exec.Command(binary, "-config", cfgFile))
	waitHTTP(t, proxy, "http://"+admin+"/healthz")
	waitHTTP(t, proxy, "http://"+listen+"/")

	rules := alertRules(t)
	dashboard := dashboardExprs(t)

	if out, err := exec.Command("promtool", "check", "rules", "prometheus/alerts.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check rules prometheus/alerts.yml: %v\n%s", err, out)
	}

	prom := startPrometheus(t, admin)
	// Rates need counters that moved between two scrapes: traffic starts
	// once Prometheus has scraped the proxy at least twice.
	waitQuery(t, prom, `count_over_time(up{job="proxy"}[10m]) >= 2`)

	dying.Close()
	// A reload of a broken file is refused and the old config keeps
	// serving; proxy_config_last_reload_successful says so.
	if err := os.WriteFile(cfgFile, []byte("servers: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := post(t, "http://"+admin+"/api/reload"); code != http.StatusBadRequest {
		t.Fatalf("POST /api/reload of a broken file: %d, want 400", code)
	}

	seen := map[string]int{} // what each kind of request answered, for the failure message
	round := func() {
		for _, path := range []string{"/", "/", "/", "/missing", "/limited", "/limited", "/limited", "/limited", "/flaky", "/flaky"} {
			resp, err := http.Get("http://" + listen + path)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			seen[fmt.Sprintf("%s %d", path, resp.StatusCode)]++
		}
	}

	// Every expression, alert rules first, with the name it is reported by.
	type expr struct{ name, query string }
	var exprs []expr
	for _, r := range rules {
		exprs = append(exprs, expr{r.name, r.expr})
	}
	for _, q := range dashboard {
		exprs = append(exprs, expr{"dashboard: " + q, q})
	}
	// And what the scenario must have shown, so that an alert's data
	// comes from the event it is about.
	for _, q := range []string{
		`up{job="proxy"} == 1`,
		`proxy_upstream_server_up{upstream="default",server="dying"} == 0`,
		`proxy_upstream_server_circuit_state{upstream="flaky",server="failing",state="open"} == 1`,
		`sum(proxy_upstream_server_up{upstream="flaky"}) == 0`,
		`proxy_config_last_reload_successful == 0`,
		`increase(proxy_requests_total{route="limited",upstream="default",code="429"}[1m]) > 0`,
		`increase(proxy_requests_total{route="default",upstream="default",server="good",code="404"}[1m]) > 0`,
		// The 500s that open the breaker come before Prometheus first
		// sees their series, so there is no increase to see: the count.
		`proxy_requests_total{route="flaky",upstream="flaky",server="failing",code="500"} >= 2`,
		`increase(proxy_requests_total{route="flaky",upstream="flaky",server="",code="503"}[1m]) > 0`,
		`increase(proxy_health_check_duration_seconds_count{upstream="default",server="dying",result="failure"}[1m]) > 0`,
	} {
		exprs = append(exprs, expr{"scenario: " + q, q})
	}

	// Each round sends traffic, then asks Prometheus every expression; an
	// expression that fails to evaluate fails the test at once, one that
	// should have data is asked again next round until the deadline.
	pending := map[string]string{}
	for _, e := range exprs {
		if _, ok := allowedEmpty[e.name]; !ok {
			pending[e.name] = e.query
		}
	}
	deadline := time.Now().Add(dataDeadline)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		round()
		for _, e := range exprs {
			n, err := prom.query(e.query)
			if err != nil {
				t.Fatalf("%s does not evaluate: %v", describe(e.name, e.query), err)
			}
			if n > 0 {
				delete(pending, e.name)
			}
		}
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		<-tick.C // paces the rounds of traffic
	}
	if len(pending) > 0 {
		var names []string
		for n, q := range pending {
			names = append(names, describe(n, q))
		}
		sort.Strings(names)
		t.Errorf("no data after %v of traffic (answers seen: %v) for:\n  %s", dataDeadline, seen, strings.Join(names, "\n  "))
	}

	// promtool lints the exposition after the traffic, when every kind of
	// series (429s, an open breaker, a failed reload) is in it. It passes
	// an empty input, so the body is checked to hold the proxy's metrics.
	body := get(t, "http://"+admin+"/metrics")
	if !strings.Contains(body, "\nproxy_requests_total{") {
		t.Errorf("/metrics has no proxy_requests_total series:\n%s", body)
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on the proxy's /metrics: %v\n%s", err, out)
	}

	for _, want := range []string{"/ 200", "/missing 404", "/limited 200", "/limited 429", "/flaky 500", "/flaky 503"} {
		if seen[want] == 0 {
			t.Errorf("no GET %s among the answers %v", want, seen)
		}
	}
	t.Logf("%d expressions evaluated (%d alert rules, %d from the dashboard); answers: %v", len(exprs), len(rules), len(dashboard), seen)

	// The dashboard's variables list label values Grafana asks Prometheus
	// for: each must offer the names the config gave.
	for label, names := range map[string][]string{"upstream": {"default", "flaky"}, "route": {"limited", "flaky"}} {
		got := prom.labelValues(t, label, "proxy_requests_total")
		for _, n := range names {
			if !contains(got, n) {
				t.Errorf("label_values(proxy_requests_total, %s) = %v, want %s among them", label, got, n)
			}
		}
	}

	// Prometheus evaluated every alert rule itself, every second: none may
	// have failed.
	prom.waitRulesHealthy(t, len(rules))
}

// describe names an expression for a failure message: an alert by its name
// and expression, others (named by their text) once.
func describe(name, query string) string {
	if strings.HasSuffix(name, query) {
		return name
	}
	return name + ": " + query
}
