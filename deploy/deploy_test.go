// Package deploy_test keeps the files that ship the proxy working: every
// path deploy/compose.yaml uses, the configs they hold (the proxy's through
// -validate, Prometheus's through promtool), the systemd unit through
// systemd-analyze, the release archives and the container image. A tool
// that is not installed skips its part and says so.
package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tbsphathuynh/proxy/metrics"
)

// binary is proxy-server built from the repository, for -validate.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "proxy-deploy")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "proxy-server")
	if out, err := exec.Command("go", "build", "-o", binary, "..").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// compose is the part of a compose file the checks read.
type compose struct {
	Services map[string]struct {
		Image string `yaml:"image"`
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Command     []string          `yaml:"command"`
		Volumes     []string          `yaml:"volumes"`
		Environment map[string]string `yaml:"environment"`
	} `yaml:"services"`
}

func loadCompose(t *testing.T) compose {
	t.Helper()
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

// mounts maps a service's container paths to the files of this folder
// mounted there.
func mounts(vols []string) map[string]string {
	m := map[string]string{}
	for _, v := range vols {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && (strings.HasPrefix(parts[0], "./") || strings.HasPrefix(parts[0], "../")) {
			m[parts[1]] = parts[0]
		}
	}
	return m
}

func TestComposeUsesFilesThatExist(t *testing.T) {
	c := loadCompose(t)
	for _, want := range []string{"proxy", "backend-1", "backend-2", "backend-3", "prometheus", "grafana"} {
		if _, ok := c.Services[want]; !ok {
			t.Errorf("compose.yaml has no %s service", want)
		}
	}
	for name, s := range c.Services {
		if s.Build != nil {
			for _, p := range []string{s.Build.Context, filepath.Join(s.Build.Context, s.Build.Dockerfile)} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("%s: build: %v", name, err)
				}
			}
		}
		for dst, src := range mounts(s.Volumes) {
			if _, err := os.Stat(src); err != nil {
				t.Errorf("%s: volume for %s: %v", name, dst, err)
			}
		}
	}
}

// TestComposeCommandsParse runs each command given to the proxy's image
// with -version added: an unknown flag fails, as it would in the stack.
func TestComposeCommandsParse(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		if s.Build == nil {
			continue
		}
		out, err := exec.Command(binary, append(s.Command, "-version")...).CombinedOutput()
		if err != nil {
			t.Errorf("%s: proxy-server %s: %v\n%s", name, strings.Join(s.Command, " "), err, out)
		}
	}
}

func TestComposeProxyConfigValidates(t *testing.T) {
	s := loadCompose(t).Services["proxy"]
	i := indexOf(s.Command, "-config")
	if i < 0 || i+1 >= len(s.Command) {
		t.Fatalf("the proxy service's command %q names no -config", s.Command)
	}
	src, ok := mounts(s.Volumes)[s.Command[i+1]]
	if !ok {
		t.Fatalf("the proxy's config %s is not mounted from this folder", s.Command[i+1])
	}
	cmd := exec.Command(binary, "-validate", "-config", src)
	for k := range s.Environment {
		cmd.Env = append(cmd.Env, k+"=set-by-the-test")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("-validate %s: %v\n%s", src, err, out)
	}
}

// TestContainerConfigValidates checks the config the image ships, with the
// variables its comment tells the user to set.
func TestContainerConfigValidates(t *testing.T) {
	cmd := exec.Command(binary, "-validate", "-config", "container/config.yaml")
	cmd.Env = []string{"ADMIN_TOKEN=secret", "BACKEND_URL=http://10.0.0.5:9001"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("-validate: %v\n%s", err, out)
	}
}

func TestPrometheusMountsKeepRuleFilesBesideTheConfig(t *testing.T) {
	m := mounts(loadCompose(t).Services["prometheus"].Volumes)
	var cfgDst string
	for dst, src := range m {
		if src == "./prometheus/compose.yml" {
			cfgDst = dst
		}
	}
	if cfgDst == "" {
		t.Fatal("compose.yaml does not mount prometheus/compose.yml into the prometheus service")
	}
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	readYAML(t, "prometheus/compose.yml", &cfg)
	if len(cfg.RuleFiles) == 0 {
		t.Fatal("prometheus/compose.yml loads no rule files")
	}
	for _, r := range cfg.RuleFiles {
		dst := filepath.Join(filepath.Dir(cfgDst), r)
		if src, ok := m[dst]; !ok {
			t.Errorf("rule file %s (%s in the container) is not mounted", r, dst)
		} else if src != "./prometheus/"+r {
			t.Errorf("%s is mounted from %s, want ./prometheus/%s", dst, src, r)
		}
	}
}

func TestPromtool(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("promtool is not installed (Debian package prometheus; make test installs it): Prometheus configs and rules not checked")
	}
	for _, args := range [][]string{
		{"check", "rules", "prometheus/alerts.yml"},
		{"check", "config", "prometheus/prometheus.yml"},
		{"check", "config", "prometheus/compose.yml"},
		{"test", "rules", "prometheus/alerts_test.yml"},
	} {
		if out, err := exec.Command("promtool", args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestShippedQueriesUseRealMetricNames catches a renamed metric that the
// alert rules or the dashboard still query, which no tool would notice:
// the query just returns nothing.
func TestShippedQueriesUseRealMetricNames(t *testing.T) {
	known := map[string]bool{}
	for _, n := range []string{
		metrics.RequestsTotal, metrics.RequestDuration, metrics.ServerUp, metrics.ServerInFlight,
		metrics.ServerEjections, metrics.ServerDrained, metrics.ServerLatencyEWMA, metrics.ServerCircuit,
		metrics.RateLimitedTotal, metrics.RateLimitStoreUp, metrics.RateLimitStoreSwitches, metrics.RetriesTotal, metrics.ProtocolErrorsTotal, metrics.PanicsTotal,
		metrics.ConfigReloadsTotal, metrics.ConfigLastReloadOK, metrics.ConfigLastReloadAt,
		metrics.HealthCheckDuration, metrics.BuildInfo,
	} {
		known[n] = true
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			known[n+suffix] = true
		}
	}
	name := regexp.MustCompile(`\bproxy_[a-z0-9_]+`)
	for _, f := range []string{"prometheus/alerts.yml", "grafana/proxy-dashboard.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		used := 0
		for _, n := range name.FindAllString(string(b), -1) {
			if n == "proxy_overview" {
				continue // the dashboard's uid
			}
			used++
			if !known[n] {
				t.Errorf("%s queries %s, which the proxy does not export", f, n)
			}
		}
		if used == 0 {
			t.Errorf("%s queries no proxy metric", f)
		}
	}
}

func TestGrafanaProvisioning(t *testing.T) {
	m := mounts(loadCompose(t).Services["grafana"].Volumes)
	if m["/etc/grafana/provisioning"] != "./grafana/provisioning" {
		t.Errorf("grafana's provisioning is mounted from %q", m["/etc/grafana/provisioning"])
	}
	var ds struct {
		Datasources []struct {
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, "grafana/provisioning/datasources/prometheus.yml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("datasources %+v, want the prometheus service", ds.Datasources)
	}
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "grafana/provisioning/dashboards/proxy.yml", &prov)
	if len(prov.Providers) != 1 {
		t.Fatalf("dashboard providers %+v", prov.Providers)
	}
	dst := ""
	for d, src := range m {
		if src == "./grafana/proxy-dashboard.json" {
			dst = d
		}
	}
	if filepath.Dir(dst) != prov.Providers[0].Options.Path {
		t.Errorf("the dashboard is mounted at %q, outside the provider's path %q", dst, prov.Providers[0].Options.Path)
	}
	b, err := os.ReadFile("grafana/proxy-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string            `json:"uid"`
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil || dash.UID == "" || len(dash.Panels) == 0 {
		t.Errorf("proxy-dashboard.json: uid %q, %d panels, %v", dash.UID, len(dash.Panels), err)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
