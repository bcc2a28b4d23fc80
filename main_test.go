package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var binary string

// TestMain builds the real binary once, so signal tests exercise the
// process an operator runs.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "proxy-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "proxy-server")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	// Every goroutine a test started has ended (goleak.VerifyTestMain,
	// with the build above done first).
	if err := goleak.Find(); code == 0 && err != nil {
		fmt.Fprintln(os.Stderr, "goleak:", err)
		code = 1
	}
	os.Exit(code)
}

// handedOut holds every address freePort has returned in this process.
var handedOut sync.Map

// freePort returns a loopback address that was free a moment ago, and
// never one it returned before: the probe is let go at once, so the kernel
// may offer the same port to the next call (a test once got its admin and
// proxy listeners on one port that way, and the proxy refused the config).
func freePort(t *testing.T) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, taken := handedOut.LoadOrStore(addr, true); !taken {
			return addr
		}
	}
}

// proc is a running proxy-server whose stderr is collected.
type proc struct {
	cmd  *exec.Cmd
	logs chan string
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startCmd(t, exec.Command(binary, args...))
}

// startCmd starts cmd, a command of the binary, collecting its stderr.
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: make(chan string, 1000), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case p.logs <- sc.Text():
			default:
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// waitLog waits for a log line matching re.
func (p *proc) waitLog(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(15 * time.Second)
	var seen []string
	for {
		select {
		case l := <-p.logs:
			if rx.MatchString(l) {
				return l
			}
			seen = append(seen, l)
		case <-deadline:
			t.Fatalf("no log line matching %q; saw:\n%s", re, strings.Join(seen, "\n"))
		}
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func fetch(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestValidate(t *testing.T) {
	good := writeConfig(t, "servers:\n  - url: http://127.0.0.1:9001\n")
	if out, err := exec.Command(binary, "-validate", "-config", good).CombinedOutput(); err != nil {
		t.Errorf("-validate on a good file: %v\n%s", err, out)
	}
	bad := writeConfig(t, "servers:\n  - url: http://127.0.0.1:9001\nload_balancing:\n  stratgy: round_robin\n")
	out, err := exec.Command(binary, "-validate", "-config", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("-validate on a bad file: err %v, want exit status 1", err)
	}
	want := bad + ":4:3:"
	if !strings.HasPrefix(string(out), want) || !strings.Contains(string(out), `"strategy"`) {
		t.Errorf("-validate said %q, want %s… with a suggestion of \"strategy\"", out, want)
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(binary, "-version").Output()
	if err != nil || !strings.Contains(string(out), "go1.") {
		t.Errorf("-version: %q, %v", out, err)
	}
}

func TestQuickModeAndDemo(t *testing.T) {
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "quick") }))
	defer a.Close()
	addr := freePort(t)
	p := start(t, "-listen", addr, "-admin", freePort(t), "-to", a.URL)
	p.waitLog(t, "proxy listening")
	if body := fetch(t, addr); body != "quick" {
		t.Errorf("quick mode: %q", body)
	}
}

func TestDemoBalancesAcrossBackends(t *testing.T) {
	addr, admin := freePort(t), freePort(t)
	cmd := exec.Command(binary, "-demo", "-listen", addr, "-admin", admin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	sc := bufio.NewScanner(out)
	var printed []string
	for sc.Scan() {
		printed = append(printed, sc.Text())
		if strings.Contains(sc.Text(), "dashboard") {
			break
		}
	}
	go io.Copy(io.Discard, out)
	if !strings.Contains(strings.Join(printed, "\n"), "curl -s http://"+addr+"/") {
		t.Errorf("demo did not print the URL to try; printed %q", printed)
	}
	seen := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for len(seen) < 3 && time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		seen[resp.Header.Get("X-Backend")] = true
		resp.Body.Close()
	}
	if len(seen) != 3 {
		t.Errorf("demo answers came from %v, want three backends", seen)
	}
}

// TestDemoBackendAnswersWithItsName runs the single backend the compose
// stack in deploy/ starts three of.
func TestDemoBackendAnswersWithItsName(t *testing.T) {
	addr := freePort(t)
	p := start(t, "-demo-backend", addr, "-demo-name", "backend-2")
	p.waitLog(t, "demo backend listening")
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Backend"); got != "backend-2" {
		t.Errorf("X-Backend %q, want backend-2", got)
	}
	resp, err = http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/health of a steady backend: %d", resp.StatusCode)
	}
}
