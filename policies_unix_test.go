//go:build unix

package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
)

// sticky through the binary: the cookie is set once and followed, it
// still names the same server after a SIGHUP reload, another server going
// down does not move the client, and its own server going down does.
func TestStickyThroughTheBinary(t *testing.T) {
	names := []string{"a", "b", "c"}
	backends := map[string]*httptest.Server{}
	var urls []string
	for _, name := range names {
		b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
		t.Cleanup(b.Close)
		backends[name] = b
		urls = append(urls, fmt.Sprintf("{url: %q, name: %s}", b.URL, name))
	}
	addr := freePort(t)
	yaml := fmt.Sprintf(`listen: %q
admin: {listen: ""}
logging: {access_log: "off"}
health_checks: {enabled: false}
retries: {attempts: 3}
servers: [%s]
routes:
  - match: {path_prefix: /}
    upstream: default
    policies: [{sticky: {cookie: srv, ttl: 1h, http_only: true}}]
`, addr, strings.Join(urls, ", "))
	cfg := writeConfig(t, yaml)
	p := start(t, "-config", cfg)
	p.waitLog(t, "proxy listening")

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func() (string, string) {
		t.Helper()
		res, err := c.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("status %d %q", res.StatusCode, b)
		}
		return string(b), res.Header.Get("Set-Cookie")
	}
	first, set := get()
	if !strings.HasPrefix(set, "srv=") || !strings.Contains(set, "HttpOnly") || !strings.Contains(set, "Max-Age=3600") {
		t.Fatalf("first answer's Set-Cookie %q", set)
	}
	follow := func(when, want string) {
		t.Helper()
		for i := range 12 {
			if got, set := get(); got != want || set != "" {
				t.Fatalf("%s, request %d: server %s (Set-Cookie %q), want %s with the cookie kept", when, i, got, set, want)
			}
		}
	}
	follow("with the cookie", first)

	// A reload that changes something else keeps the cookie's meaning.
	if err := os.WriteFile(cfg, []byte(yaml+"timeouts: {connect: 2s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "config reloaded")
	follow("after a SIGHUP reload", first)

	// Another server down: the client stays.
	other := names[0]
	if other == first {
		other = names[1]
	}
	backends[other].Close()
	follow("with another server down", first)

	// Its own server down: the client moves, and its cookie with it.
	backends[first].Close()
	moved, set := get()
	if moved == first || moved == other || !strings.HasPrefix(set, "srv=") {
		t.Fatalf("with its server down the client got %q (Set-Cookie %q)", moved, set)
	}
	follow("after moving", moved)
}
