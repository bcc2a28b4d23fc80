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
	"sync/atomic"
	"syscall"
	"testing"
	"time"
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
	os.Exit(code)
}

// freePort returns a loopback address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
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
	cmd := exec.Command(binary, args...)
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

func TestSIGTERMDrainsInFlightRequest(t *testing.T) {
	started := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		close(started)
		time.Sleep(time.Second)
		io.WriteString(w, "finished")
	}))
	defer slow.Close()
	addr := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("listen: %s\nadmin: {listen: \"\"}\nshutdown_timeout: 10s\nhealth_checks: {path: /health}\nservers:\n  - url: %s\n", addr, slow.URL))
	p := start(t, "-config", cfg)
	p.waitLog(t, "proxy listening")

	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{string(b), err}
	}()
	<-started
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// While the slow request drains, new connections are refused.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-res:
		t.Fatal("the in-flight request ended before the listener closed; the test proves nothing")
	default:
	}
	r := <-res
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request across SIGTERM: %q, %v; want it to finish", r.body, r.err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("exit after drain: %v, want status 0", p.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("process did not exit after draining")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("listener still accepts after shutdown")
	}
}

func TestSIGHUPReloads(t *testing.T) {
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "a") }))
	defer a.Close()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") }))
	defer b.Close()
	addr := freePort(t)
	head := fmt.Sprintf("listen: %s\nadmin: {listen: \"\"}\nlogging: {access_log: \"off\"}\n", addr)
	cfg := writeConfig(t, head+"servers:\n  - url: "+a.URL+"\n")
	p := start(t, "-config", cfg)
	p.waitLog(t, "proxy listening")
	if body := fetch(t, addr); body != "a" {
		t.Fatalf("before reload: %q", body)
	}

	// A broken config is refused and the old one keeps serving.
	os.WriteFile(cfg, []byte(head+"servers:\n  - url: "+b.URL+"\n    wieght: 2\n"), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "reload failed")
	if body := fetch(t, addr); body != "a" {
		t.Errorf("after a failed reload: %q, want the old config serving", body)
	}

	os.WriteFile(cfg, []byte(head+"servers:\n  - url: "+b.URL+"\n"), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "config reloaded")
	if body := fetch(t, addr); body != "b" {
		t.Errorf("after reload: %q, want the new server", body)
	}
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

func TestSIGTERMStopsWaitingAfterShutdownTimeout(t *testing.T) {
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer stuck.Close()
	defer close(release)
	addr := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("listen: %s\nadmin: {listen: \"\"}\nshutdown_timeout: 500ms\nhealth_checks: {path: /health}\nservers:\n  - url: %s\n", addr, stuck.URL))
	p := start(t, "-config", cfg)
	p.waitLog(t, "proxy listening")
	go func() {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	sent := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("process still running 10s after SIGTERM with a 500ms shutdown_timeout")
	}
	if d := time.Since(sent); d < 400*time.Millisecond {
		t.Errorf("exited after %v: it did not wait for the in-flight request", d)
	}
}

// TestSIGHUPUnderLoadLosesNothing reloads a changed server set five times
// while clients keep sending.
func TestSIGHUPUnderLoadLosesNothing(t *testing.T) {
	var srvs []*httptest.Server
	for range 3 {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
		defer s.Close()
		srvs = append(srvs, s)
	}
	addr := freePort(t)
	head := fmt.Sprintf("listen: %s\nadmin: {listen: \"\"}\nlogging: {access_log: \"off\"}\nservers:\n", addr)
	sets := []string{
		"  - url: " + srvs[0].URL + "\n  - url: " + srvs[1].URL + "\n",
		"  - url: " + srvs[1].URL + "\n  - url: " + srvs[2].URL + "\n",
	}
	cfg := writeConfig(t, head+sets[0])
	p := start(t, "-config", cfg)
	p.waitLog(t, "proxy listening")

	stop := make(chan struct{})
	var total, failed atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("http://" + addr + "/")
				total.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	for i := range 5 {
		os.WriteFile(cfg, []byte(head+sets[(i+1)%2]), 0o600)
		p.cmd.Process.Signal(syscall.SIGHUP)
		p.waitLog(t, "config reloaded")
		// Let traffic run on the new config before the next reload.
		n := total.Load()
		deadline := time.Now().Add(10 * time.Second)
		for total.Load() < n+20 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed across 5 SIGHUP reloads; want 0", failed.Load(), total.Load())
	}
}
