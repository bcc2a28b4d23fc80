//go:build unix

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestSIGUSR1ReopensTheAccessLog does what logrotate does: move the file
// away, signal, and expect new lines in a new file.
func TestSIGUSR1ReopensTheAccessLog(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	dir := t.TempDir()
	logFile := filepath.Join(dir, "access.log")
	addr := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("listen: %s\nadmin: {listen: \"\"}\nlogging: {access_log: %s}\nhealth_checks: {enabled: false}\nservers:\n  - url: %s\n", addr, logFile, srv.URL))
	p := start(t, "-config", cfg)
	p.waitLog(t, "proxy listening")
	fetch(t, addr)
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGUSR1)
	p.waitLog(t, "access log reopened")
	fetch(t, addr)
	b, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(b), "msg=request") {
		t.Errorf("new access log after SIGUSR1: %q, %v", b, err)
	}
	old, _ := os.ReadFile(logFile + ".1")
	if strings.Count(string(old), "msg=request") != 1 {
		t.Errorf("rotated file has %q, want exactly the first request", old)
	}
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
