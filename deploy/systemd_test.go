package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const unit = "systemd/proxy.service"

// unitKeys reads a unit file's Key=Value lines, every value of a key.
func unitKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			keys[k] = append(keys[k], v)
		}
	}
	return keys
}

func TestSystemdUnitSettings(t *testing.T) {
	keys := unitKeys(t, unit)
	for k, want := range map[string]string{
		"Type":                  "notify",
		"ExecReload":            "/bin/kill -HUP $MAINPID",
		"ExecStart":             "/usr/local/bin/proxy-server -config /etc/proxy/config.yaml",
		"AmbientCapabilities":   "CAP_NET_BIND_SERVICE",
		"NoNewPrivileges":       "yes",
		"ProtectSystem":         "strict",
		"ProtectHome":           "yes",
		"PrivateTmp":            "yes",
		"DynamicUser":           "yes",
		"KillSignal":            "SIGTERM",
		"CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
	} {
		if got := keys[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
}

// TestSystemdAnalyzeVerify has systemd check the unit. verify also checks
// that ExecStart's program exists, so it checks a copy that starts the
// binary built for the tests.
func TestSystemdAnalyzeVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd): the unit is not verified")
	}
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.ReplaceAll(string(b), "/usr/local/bin/proxy-server", binary)
	copyPath := filepath.Join(t.TempDir(), "proxy.service")
	if err := os.WriteFile(copyPath, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	// It warns of unknown keys and bad values on stderr but still exits 0.
	out, err := exec.Command("systemd-analyze", "verify", copyPath).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
