package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// process is a program the test started, with its output kept for the
// failure message.
type process struct {
	name string
	mu   sync.Mutex // guards out
	out  bytes.Buffer
	done chan struct{} // closed once the process has exited
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startProcess starts cmd and kills it when the test ends, printing its
// output if the test failed.
func startProcess(t *testing.T, name string, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{name: name, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p, p
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s's output:\n%s", name, p.output())
		}
	})
	return p
}

// waitHTTP polls u until it answers 200, failing the test if p exits or
// the deadline passes first.
func waitHTTP(t *testing.T, p *process, u string) {
	t.Helper()
	deadline := time.Now().Add(startDeadline)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(u)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before %s answered:\n%s", p.name, u, p.output())
		case <-tick.C:
		}
	}
	t.Fatalf("%s did not answer 200 within %v; last: %s", u, startDeadline, last)
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", u, resp.Status, err)
	}
	return string(b)
}

func post(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Post(u, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// rule is one alert rule of deploy/prometheus/alerts.yml.
type rule struct{ name, expr string }

func alertRules(t *testing.T) []rule {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "prometheus/alerts.yml", &f)
	var rules []rule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			rules = append(rules, rule{r.Alert, strings.TrimSpace(r.Expr)})
		}
	}
	if len(rules) == 0 {
		t.Fatal("prometheus/alerts.yml has no rules")
	}
	return rules
}

// grafanaVars are the values the test gives the dashboard's variables:
// "All" for the upstream and route pickers (their allValue), and for the
// intervals Grafana computes, one long enough to hold several of the
// test's one-second scrapes (Grafana's $__rate_interval would be 4s here,
// which a slow scrape on a loaded machine could leave with one sample).
var grafanaVars = map[string]string{
	"upstream":        ".*",
	"route":           ".*",
	"__rate_interval": "1m",
	"__interval":      "1m",
	"__range":         "5m",
}

var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)

// dashboardExprs returns every PromQL expression of the Grafana dashboard,
// from panels, nested rows and annotations alike, with its variables
// substituted, each once.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("grafana/proxy-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" && s != "" {
					set[s] = true
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	var exprs []string
	for e := range set {
		e = grafanaVar.ReplaceAllStringFunc(e, func(m string) string {
			sub := grafanaVar.FindStringSubmatch(m)
			name := sub[1] + sub[2]
			v, ok := grafanaVars[name]
			if !ok {
				t.Errorf("dashboard expression %q uses $%s, which the test gives no value", e, name)
			}
			return v
		})
		exprs = append(exprs, e)
	}
	if len(exprs) == 0 {
		t.Fatal("grafana/proxy-dashboard.json has no expr")
	}
	sort.Strings(exprs)
	return exprs
}

// prometheus is a running Prometheus server.
type prometheus struct {
	base string // http://host:port
}

// startPrometheus starts Prometheus with the shipped prometheus.yml,
// changed only to scrape target (the proxy's admin listener) every second
// and to evaluate the shipped alert rules every second, with its data in a
// temporary directory.
func startPrometheus(t *testing.T, target string) *prometheus {
	t.Helper()
	var cfg map[string]any
	readYAML(t, "prometheus/prometheus.yml", &cfg)
	cfg["global"] = map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"}
	rules, err := filepath.Abs("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg["rule_files"] = []string{rules}
	scrapes, _ := cfg["scrape_configs"].([]any)
	if len(scrapes) != 1 {
		t.Fatalf("prometheus.yml has %d scrape configs, want 1", len(scrapes))
	}
	job := scrapes[0].(map[string]any)
	job["static_configs"] = []any{map[string]any{"targets": []string{target}}}

	dir := t.TempDir()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := startProcess(t, "prometheus", exec.Command("prometheus",
		"--config.file="+file,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	))
	waitHTTP(t, p, "http://"+addr+"/-/ready")
	return &prometheus{base: "http://" + addr}
}

// apiResponse is the envelope of Prometheus's HTTP API answers.
type apiResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Data      json.RawMessage `json:"data"`
}

func (p *prometheus) api(path string, params url.Values) (json.RawMessage, error) {
	resp, err := http.Get(p.base + path + "?" + params.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r apiResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", path, resp.Status, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s: %s", r.ErrorType, resp.Status, r.Error)
	}
	if len(r.Warnings) > 0 {
		return nil, fmt.Errorf("warnings: %v", r.Warnings)
	}
	return r.Data, nil
}

// query evaluates q now and returns how many samples it gave that are
// numbers (NaN, from a ratio or quantile over nothing, is no data).
func (p *prometheus) query(q string) (int, error) {
	data, err := p.api("/api/v1/query", url.Values{"query": {q}})
	if err != nil {
		return 0, err
	}
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return 0, err
	}
	var values [][2]any
	switch d.ResultType {
	case "vector":
		var v []struct {
			Value [2]any `json:"value"`
		}
		if err := json.Unmarshal(d.Result, &v); err != nil {
			return 0, err
		}
		for _, s := range v {
			values = append(values, s.Value)
		}
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(d.Result, &v); err != nil {
			return 0, err
		}
		values = append(values, v)
	default:
		return 0, fmt.Errorf("result type %s, want an instant vector or a scalar", d.ResultType)
	}
	n := 0
	for _, v := range values {
		s, _ := v[1].(string)
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) {
			n++
		}
	}
	return n, nil
}

// waitQuery polls q until it returns data.
func waitQuery(t *testing.T, p *prometheus, q string) {
	t.Helper()
	deadline := time.Now().Add(startDeadline)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		n, err := p.query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no data within %v", q, startDeadline)
		}
		<-tick.C
	}
}

// labelValues is what Grafana's label_values(metric, label) lists.
func (p *prometheus) labelValues(t *testing.T, label, metric string) []string {
	t.Helper()
	data, err := p.api("/api/v1/label/"+label+"/values", url.Values{"match[]": {metric}})
	if err != nil {
		t.Fatalf("label_values(%s, %s): %v", metric, label, err)
	}
	var v []string
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// waitRulesHealthy waits until Prometheus has evaluated all n alert rules
// at least once, then fails the test for each whose evaluation failed.
func (p *prometheus) waitRulesHealthy(t *testing.T, n int) {
	t.Helper()
	type ruleState struct {
		Name      string `json:"name"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
	}
	deadline := time.Now().Add(startDeadline)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		data, err := p.api("/api/v1/rules", url.Values{"type": {"alert"}})
		if err != nil {
			t.Fatalf("/api/v1/rules: %v", err)
		}
		var d struct {
			Groups []struct {
				Rules []ruleState `json:"rules"`
			} `json:"groups"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatal(err)
		}
		var rules []ruleState
		evaluated := 0
		for _, g := range d.Groups {
			for _, r := range g.Rules {
				rules = append(rules, r)
				if r.Health != "unknown" {
					evaluated++
				}
			}
		}
		if len(rules) == n && evaluated == n {
			for _, r := range rules {
				if r.Health != "ok" {
					t.Errorf("Prometheus evaluated alert %s: health %s: %s", r.Name, r.Health, r.LastError)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus loaded %d alert rules (want %d), %d evaluated, after %v", len(rules), n, evaluated, startDeadline)
		}
		<-tick.C
	}
}

func contains(s []string, v string) bool {
	return indexOf(s, v) >= 0
}
