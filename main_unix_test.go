//go:build unix

package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
