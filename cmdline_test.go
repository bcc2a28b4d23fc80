package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/internal/testcert"

	"github.com/tbsphathuynh/proxy/balancer"
)

// runBinary runs the proxy to completion and returns its exit code,
// stdout and stderr.
func runBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// A key the strategy ignores is a warning: -validate prints it where a
// compiler would and still succeeds.
func TestValidateWarnsAndSucceeds(t *testing.T) {
	f := writeConfig(t, "servers:\n  - url: http://127.0.0.1:9001\nload_balancing:\n  strategy: round_robin\n  hash_key: header:X-User\n")
	code, stdout, stderr := runBinary(t, "-validate", "-config", f)
	want := f + `:5:13: warning: load_balancing.hash_key: ignored: only strategy consistent_hash uses it, not "round_robin"` + "\n"
	if code != 0 || stderr != want || stdout != f+": ok\n" {
		t.Errorf("-validate: exit %d\nstdout %q\nstderr %q\nwant exit 0, stderr %q", code, stdout, stderr, want)
	}
}

// Health checks every 200ms with no timeout written: the default timeout
// gives way rather than fail a file that never mentions it.
func TestValidateShortIntervalAlone(t *testing.T) {
	for _, interval := range []string{"200ms", "1s"} {
		f := writeConfig(t, "servers:\n  - url: http://127.0.0.1:9001\nhealth_checks: {interval: "+interval+"}\n")
		if code, _, stderr := runBinary(t, "-validate", "-config", f); code != 0 {
			t.Errorf("interval %s alone: exit %d: %s", interval, code, stderr)
		}
	}
}

// -validate reads the certificate and key, as nginx -t does, and names the
// setting and its line.
func TestValidateReadsTLSFiles(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "server.crt")
	f := writeConfig(t, "servers:\n  - url: http://127.0.0.1:9001\ntls:\n  cert_file: "+missing+"\n  key_file: "+missing+"\n")
	code, _, stderr := runBinary(t, "-validate", "-config", f)
	want := f + ":4:14: tls.cert_file: cannot read \"" + missing + "\": no such file or directory\n"
	if code != 1 || !strings.HasPrefix(stderr, want) {
		t.Errorf("-validate with a missing certificate: exit %d, %q; want exit 1 and %q first", code, stderr, want)
	}
}

// A YAML mistake is reported at its line and column, in words.
func TestValidateYAMLSyntax(t *testing.T) {
	f := writeConfig(t, "servers:\n  - url: http://127.0.0.1:9001\n\t  weight: 2\n")
	code, _, stderr := runBinary(t, "-validate", "-config", f)
	want := f + ":3:1: invalid YAML: tabs are not allowed for indentation in YAML; use spaces\n"
	if code != 1 || stderr != want {
		t.Errorf("tab: exit %d, %q; want exit 1, %q", code, stderr, want)
	}
	f = writeConfig(t, "servers:\n  - url: http://127.0.0.1:9001\nhealth_checks:\n    interval: 1s\n  timeout: 1s\n")
	_, _, stderr = runBinary(t, "-validate", "-config", f)
	if want := f + ":5:3: invalid YAML: did not find expected key"; !strings.HasPrefix(stderr, want) {
		t.Errorf("indentation: %q, want it to start %q", stderr, want)
	}
}

// A listen address someone else holds is reported with the setting and
// where it was written.
func TestListenInUseNamesTheSetting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	f := writeConfig(t, "admin: {listen: \"\"}\nlisten: "+addr+"\nservers:\n  - url: http://127.0.0.1:9001\n")
	code, _, stderr := runBinary(t, "-config", f)
	want := "listen " + addr + " (" + f + ":2): address already in use"
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, %q; want exit 1 and %q", code, stderr, want)
	}
	// Given on the command line, the flag is named instead.
	_, _, stderr = runBinary(t, "-to", "http://127.0.0.1:9001", "-admin", freePort(t), "-listen", addr)
	if want := "listen " + addr + " (-listen): address already in use"; !strings.Contains(stderr, want) {
		t.Errorf("quick mode: %q, want %q", stderr, want)
	}
}

// -h is help, not an error: usage, examples, the strategies this binary
// has and where the documentation is, on stdout.
func TestHelp(t *testing.T) {
	code, stdout, stderr := runBinary(t, "-h")
	if code != 0 || stderr != "" {
		t.Fatalf("-h: exit %d, stderr %q", code, stderr)
	}
	for _, want := range append([]string{"Usage:", "Examples:", "proxy-server -validate", "-to http://", "docs/", "configuration.md"}, balancer.Names()...) {
		if !strings.Contains(stdout, want) {
			t.Errorf("-h does not mention %q:\n%s", want, stdout)
		}
	}
	code, _, stderr = runBinary(t, "-nosuchflag")
	if code != 2 || !strings.Contains(stderr, "-nosuchflag") || !strings.Contains(stderr, "-h for help") {
		t.Errorf("unknown flag: exit %d, %q", code, stderr)
	}
}

// Quick mode's mistakes name the flag the user typed, not a line of a
// file they never saw.
func TestQuickModeErrorsNameTheFlag(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-to", "127.0.0.1:9001"}, "-to 127.0.0.1:9001: needs a scheme: http://127.0.0.1:9001\n"},
		{[]string{"-to", "http://a", "-to", "ftp://b"}, "-to ftp://b: scheme must be http or https, not \"ftp\"\n"},
		{[]string{"-to", "http://a", "-strategy", "round_robbin"}, "-strategy round_robbin: unknown strategy \"round_robbin\", did you mean \"round_robin\"?\n"},
		{[]string{"-to", "http://a", "-listen", "8080"}, "-listen 8080: \"8080\" is not a host:port address; write \":8080\" to use every interface\n"},
	}
	for _, tc := range tests {
		code, _, stderr := runBinary(t, tc.args...)
		if code != 2 || stderr != tc.want {
			t.Errorf("%q: exit %d, %q; want exit 2, %q", tc.args, code, stderr, tc.want)
		}
	}
}

// -version and proxy_build_info tell the same commit, whatever the build
// recorded.
func TestBuildInfoAgreesWithVersion(t *testing.T) {
	_, out, _ := runBinary(t, "-version")
	m := regexp.MustCompile(`^proxy-server (\S+) commit (\S+) `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("-version: %q", out)
	}
	if m[2] == "" {
		t.Fatalf("-version names no commit: %q", out)
	}
	addr, admin := freePort(t), freePort(t)
	p := start(t, "-to", "http://127.0.0.1:9001", "-listen", addr, "-admin", admin)
	p.waitLog(t, "proxy listening")
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	line := regexp.MustCompile(`(?m)^proxy_build_info\{.*$`).FindString(string(body))
	for _, want := range []string{`commit="` + m[2] + `"`, `version="` + m[1] + `"`} {
		if !strings.Contains(line, want) {
			t.Errorf("metrics say %q; -version says %q, want %s", line, out, want)
		}
	}
}

// Every example starts as shipped, given what its comments say to make
// first (the TLS examples' certificate, made here).
func TestExamplesStart(t *testing.T) {
	files, err := filepath.Glob("examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	dir := t.TempDir()
	certs := filepath.Join(dir, "examples", "certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		t.Fatal(err)
	}
	writeSelfSigned(t, filepath.Join(certs, "server.crt"), filepath.Join(certs, "server.key"))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			abs, err := filepath.Abs(f)
			if err != nil {
				t.Fatal(err)
			}
			addr := freePort(t)
			// The listen flags keep examples off ports in use; Redis is
			// pointed at a closed port, which rate limiting rides out.
			cmd := exec.Command(binary, "-config", abs, "-listen", addr, "-admin", freePort(t))
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "REDIS_ADDR="+freePort(t), "ADMIN_TOKEN=")
			p := startCmd(t, cmd)
			line := p.waitLog(t, "proxy listening")
			if !strings.Contains(string(mustRead(t, abs)), "tls:") {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatalf("%s: listening (%s) but %v", f, line, err)
				}
				c.Close()
				return
			}
			c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatalf("%s: TLS handshake: %v", f, err)
			}
			c.Close()
		})
	}
}

func mustRead(t *testing.T, f string) []byte {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeSelfSigned writes a certificate for localhost and its key.
func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	if err := testcert.Write(certFile, keyFile, time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
}
