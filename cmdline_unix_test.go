//go:build unix

package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
)

// -listen takes precedence over the file's listen, at start and after a
// reload; the file's warnings are logged both times.
func TestListenFlagOverridesTheFileAcrossReloads(t *testing.T) {
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "a") }))
	defer a.Close()
	fileAddr, flagAddr := freePort(t), freePort(t)
	body := "listen: " + fileAddr + "\nadmin: {listen: \"\"}\nlogging: {access_log: \"off\"}\nhealth_checks: {enabled: false}\n" +
		"load_balancing: {bounded_load: 0.5}\nservers:\n  - url: " + a.URL + "\n"
	cfg := writeConfig(t, body)
	p := start(t, "-config", cfg, "-listen", flagAddr)
	p.waitLog(t, `config warning.*load_balancing.bounded_load: ignored`)
	p.waitLog(t, "proxy listening.*"+flagAddr)
	if got := fetch(t, flagAddr); got != "a" {
		t.Fatalf("on -listen's address: %q", got)
	}
	if c, err := net.Dial("tcp", fileAddr); err == nil {
		c.Close()
		t.Errorf("the file's listen %s answers too", fileAddr)
	}

	if err := os.WriteFile(cfg, []byte(body+"watch: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "config reloaded")
	p.waitLog(t, `config warning.*load_balancing.bounded_load: ignored`)
	if got := fetch(t, flagAddr); got != "a" {
		t.Errorf("after reload, on -listen's address: %q", got)
	}
	if c, err := net.Dial("tcp", fileAddr); err == nil {
		c.Close()
		t.Errorf("after reload, the file's listen %s answers", fileAddr)
	}
}
