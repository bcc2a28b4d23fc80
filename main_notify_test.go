//go:build unix

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSystemdNotify plays systemd's side of a Type=notify unit: the proxy
// says READY=1 only once it accepts connections, brackets a reload with
// RELOADING=1 and READY=1, and says STOPPING=1 when SIGTERM starts the
// drain.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	next := func(want string) {
		t.Helper()
		ln.SetReadDeadline(time.Now().Add(15 * time.Second))
		buf := make([]byte, 512)
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if got := string(buf[:n]); got != want {
			t.Fatalf("notified %q, want %q", got, want)
		}
	}

	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	addr := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("listen: %s\nadmin: {listen: \"\"}\nlogging: {access_log: \"off\"}\nhealth_checks: {enabled: false}\nservers:\n  - url: %s\n", addr, backend.URL))
	p := start(t, "-config", cfg)

	next("READY=1")
	// systemd starts the units that wait on this one now: the port must
	// already answer.
	if body := fetch(t, addr); body != "ok" {
		t.Fatalf("right after READY=1: %q", body)
	}

	p.cmd.Process.Signal(syscall.SIGHUP)
	next("RELOADING=1")
	next("READY=1")

	p.cmd.Process.Signal(syscall.SIGTERM)
	next("STOPPING=1")
	<-p.done
	if p.err != nil {
		t.Errorf("exit after SIGTERM: %v", p.err)
	}
}
