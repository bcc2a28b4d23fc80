package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/redistest"
)

// openFiles lists what the process's file descriptors point at.
func openFiles(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			out = append(out, l)
		}
	}
	return out
}

func isOpen(t *testing.T, path string) bool {
	for _, f := range openFiles(t) {
		if f == path {
			return true
		}
	}
	return false
}

// fileProxy runs a proxy from a config file, reloaded as SIGHUP does; the
// YAML is written whole.
func fileProxy(t *testing.T, yaml string) (*Server, func(string)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "proxy.yaml")
	write := func(y string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(yaml)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	s, err := New(cfg, Options{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s, write
}

// An access log file the new config no longer names stays open for the
// request that started before the reload, gets its line, and is closed
// when that request ends.
func TestReplacedAccessLogClosesAfterItsLastRequest(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	slow := backend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
	})
	dir := t.TempDir()
	oldLog, newLog := filepath.Join(dir, "old.log"), filepath.Join(dir, "new.log")
	conf := func(log string) string {
		return "listen: 127.0.0.1:0\nadmin: {listen: \"\"}\nhealth_checks: {enabled: false}\n" +
			"logging: {access_log: " + log + "}\nservers: [{url: " + slow.URL + "}]\n"
	}
	p, write := fileProxy(t, conf(oldLog))
	done := make(chan int)
	go func() {
		resp, err := http.Get("http://" + p.Addr() + "/slow")
		if err != nil {
			t.Error(err)
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-arrived
	write(conf(newLog))
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if !isOpen(t, oldLog) {
		t.Fatal("the old access log was closed under a request still in flight")
	}
	close(release)
	if status := <-done; status != 200 {
		t.Fatalf("slow request: %d", status)
	}
	waitFor(t, "the old access log to close", func() bool { return !isOpen(t, oldLog) })
	if b, _ := os.ReadFile(oldLog); !strings.Contains(string(b), "/slow") {
		t.Errorf("the old log lacks the line of the request that started under it: %q", b)
	}
	if !isOpen(t, newLog) {
		t.Error("the new access log is not open")
	}
}

// Hundreds of reloads between configs that differ in servers, routes,
// transports, Redis limits and access-log files leave goroutines, file
// descriptors, heap and Redis connections where a few reloads left them.
func TestReloadsLeakNothing(t *testing.T) {
	rs := redistest.NewServer(t)
	var hits atomic.Int64
	h := func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }
	a, b := backend(t, "a", h), backend(t, "b", h)
	dir := t.TempDir()
	conf := func(i int) string {
		c := "listen: 127.0.0.1:0\nadmin: {listen: \"\"}\nhealth_checks: {enabled: false}\n" +
			fmt.Sprintf("logging: {access_log: %s}\n", filepath.Join(dir, fmt.Sprintf("access%d.log", i))) +
			// A new response_header timeout each time is a new transport.
			fmt.Sprintf("timeouts: {response_header: %ds}\n", 10+i)
		if i%2 == 0 {
			return c + "servers: [{url: " + a.URL + "}]\n" +
				"upstreams:\n  api:\n    servers: [{url: " + b.URL + "}]\n    health_checks: {enabled: false}\n" +
				"    rate_limit:\n      requests_per_second: 100000\n      burst: 100000\n      store: redis\n" +
				fmt.Sprintf("      redis: {address: %s, key_prefix: p%d}\n", rs.Addr, i) +
				"routes:\n  - {name: api, match: {path_prefix: /api}, upstream: api}\n"
		}
		return c + "servers: [{url: " + b.URL + "}]\n" +
			"rate_limit: {requests_per_second: 100000, burst: 100000}\n" +
			"upstreams:\n  web:\n    servers: [{url: " + a.URL + "}]\n    health_checks: {enabled: false}\n" +
			"routes:\n  - {name: web, match: {path_prefix: /web}, upstream: web}\n"
	}
	p, write := fileProxy(t, conf(0))
	base := "http://" + p.Addr()
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()

	type sample struct {
		goroutines, fds int
		heap            uint64
		redisClients    int
	}
	measure := func() sample {
		c.CloseIdleConnections()
		goruntime.GC()
		var ms goruntime.MemStats
		goruntime.ReadMemStats(&ms)
		list, err := rdb.ClientList(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		return sample{goruntime.NumGoroutine(), len(openFiles(t)), ms.HeapAlloc, strings.Count(list, "\n")}
	}
	const reloads = 300
	var before sample
	for i := 1; i <= reloads; i++ {
		write(conf(i))
		if err := p.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		for _, path := range []string{"/", "/api/x", "/web/x"} {
			if status, _, _ := get(t, c, base+path); status != 200 {
				t.Fatalf("reload %d: GET %s: %d", i, path, status)
			}
		}
		if i == 20 {
			before = measure()
		}
	}
	// Transports close their idle connections; the servers' ends of them
	// close a moment later.
	var after sample
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = measure()
		if after.goroutines <= before.goroutines+10 && after.fds <= before.fds+5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("after 20 reloads: %+v; after %d: %+v", before, reloads, after)
	if after.goroutines > before.goroutines+10 {
		t.Errorf("goroutines grew from %d to %d", before.goroutines, after.goroutines)
	}
	if after.fds > before.fds+5 {
		t.Errorf("open file descriptors grew from %d to %d", before.fds, after.fds)
	}
	if after.heap > before.heap+4<<20 {
		t.Errorf("heap grew from %d to %d bytes", before.heap, after.heap)
	}
	// The test's own connection and the current config's client (reloads
	// 20 and 300 both use Redis): every replaced client was closed.
	if after.redisClients > 2 {
		t.Errorf("%d Redis connections after the reloads, want 2: the test's and the current config's", after.redisClients)
	}
}
