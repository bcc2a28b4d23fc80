package h1

import (
	"context"
	"io"
	"net/http"
	"testing"
)

func watcherRunning(s *Server) bool {
	s.watches.mu.Lock()
	defer s.watches.mu.Unlock()
	return s.watches.running
}

// One goroutine watches every request of a server, and only while
// requests come: a server that stopped getting requests runs nothing, and
// Shutdown returns with it gone.
func TestWatcherRunsOnlyWhileRequestsCome(t *testing.T) {
	s, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	c, br := dial(t, addr)
	for range 50 {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
		if _, body := readBody(t, br, "GET"); body != "ok" {
			t.Fatalf("body %q", body)
		}
	}
	if !watcherRunning(s) {
		t.Fatal("no watcher after 50 requests")
	}
	waitUntil(t, "the watcher to leave an idle server", func() bool { return !watcherRunning(s) })

	// A request starts it again, and Shutdown waits for it.
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	readBody(t, br, "GET")
	if !watcherRunning(s) {
		t.Fatal("no watcher after a request on an idle server")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if watcherRunning(s) {
		t.Fatal("watcher still running after Shutdown returned")
	}
}
