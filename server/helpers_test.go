package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/config"
)

// startProxy runs a proxy from a YAML fragment on a free loopback port,
// with the admin listener, access log and active health checks of the
// default upstream off unless the fragment says otherwise, and stops it
// when the test ends.
func startProxy(t testing.TB, yaml string) *Server {
	t.Helper()
	return startProxyLogging(t, yaml, io.Discard)
}

// startProxyLogging is startProxy with the proxy's log, as JSON, going to
// w.
func startProxyLogging(t testing.TB, yaml string, w io.Writer) *Server {
	t.Helper()
	base := "listen: 127.0.0.1:0\n"
	if !strings.Contains(yaml, "admin:") {
		base += "admin: {listen: \"\"}\n"
	}
	if !strings.Contains(yaml, "logging:") {
		base += "logging: {access_log: \"off\"}\n"
	}
	// Active checks would hit the test handlers too; tests that want them
	// say so.
	if !strings.Contains(yaml, "health_checks:") {
		base += "health_checks: {enabled: false}\n"
	}
	cfg, err := config.Parse("test.yaml", []byte(base+yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	s, err := New(cfg, Options{Logger: slog.New(slog.NewJSONHandler(w, nil))})
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
	return s
}

// backend is an httptest server that names itself in X-Backend.
func backend(t testing.TB, name string, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// get fetches url and returns status, body and headers.
func get(t testing.TB, c *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// servers renders YAML server entries for the given test servers.
func servers(srvs ...*httptest.Server) string {
	var b strings.Builder
	for _, s := range srvs {
		b.WriteString("  - url: " + s.URL + "\n")
	}
	return b.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// reloadYAML applies a new config fragment to a running proxy, keeping its
// listener unless the fragment has one of the keys in own.
func reloadYAML(t testing.TB, p *Server, yaml string, own ...string) {
	t.Helper()
	// The same listen value as startProxy's keeps the listener as it is.
	base := "listen: 127.0.0.1:0\nadmin: {listen: \"\"}\nlogging: {access_log: \"off\"}\n"
	for _, k := range own {
		if k == "listen:" {
			base = "admin: {listen: \"\"}\nlogging: {access_log: \"off\"}\n"
		}
	}
	// Active checks stay off, as startProxy leaves them, unless the test
	// says otherwise: a reload that turned them on would judge the servers
	// at once.
	if !strings.Contains(yaml, "health_checks:") {
		base += "health_checks: {enabled: false}\n"
	}
	cfg, err := config.Parse("reload.yaml", []byte(base+yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if err := p.Apply(cfg); err != nil {
		t.Fatalf("reload: %v", err)
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		// The kernel may give a port just closed again: two calls in a
		// row once returned the same one (listen and http_redirect).
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
}

// handedOut holds the addresses freeAddr has returned in this process.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// logBuffer collects a proxy's log lines; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
