package server

import (
	"net/http"
	"sync"
	"testing"
)

// A server with a base path is checked under it, as its requests are
// forwarded under it: http://h/app with path /health is checked at
// /app/health, not at the host's root.
func TestHealthChecksUnderTheBasePath(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	be := backend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = true
		mu.Unlock()
	})
	startProxy(t, "servers: [{url: "+be.URL+"/app}]\nhealth_checks: {interval: 50ms, path: /health}\n")
	waitFor(t, "a check at /app/health", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["/app/health"]
	})
	mu.Lock()
	defer mu.Unlock()
	if seen["/health"] {
		t.Error("checked at the host's root too")
	}
}
