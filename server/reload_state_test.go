package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/upstream"
)

// startProxyFile runs a proxy from a config file that Reload re-reads, as
// SIGHUP does, and returns the proxy and a function that rewrites the file.
func startProxyFile(t *testing.T, yaml string) (*Server, func(string)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "proxy.yaml")
	base := "listen: 127.0.0.1:0\nadmin: {listen: \"\"}\nlogging: {access_log: \"off\"}\n"
	write := func(y string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(base+y), 0o600); err != nil {
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

// The sequence of issue 17 item 5: failures that finish on the runtime a
// reload replaced open the server's circuit. The circuit must still go
// half-open after open_time, and the server must come back into rotation,
// also after an unrelated drain and undrain rebuilds the pool.
func TestCircuitOpenedByAReplacedRuntimeReopensOnTime(t *testing.T) {
	var aHits, held, bHits atomic.Int64
	a := backend(t, "a", func(w http.ResponseWriter, r *http.Request) { aHits.Add(1) })
	gate := make(chan struct{})
	b := backend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		bHits.Add(1)
		// The first 8 requests hang, then fail; B answers well after.
		if held.Add(1) <= 8 {
			<-gate
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	yaml := "circuit_breaker: {consecutive_failures: 3, open_time: 300ms}\n" +
		"health_checks: {enabled: false}\n" +
		"servers:\n  - {url: " + a.URL + ", name: a}\n  - {url: " + b.URL + ", name: b}\n"
	p, write := startProxyFile(t, yaml)
	url := "http://" + p.Addr() + "/"

	// Round robin sends every other request to B; keep sending until 8
	// hang there.
	var wg sync.WaitGroup
	var failed atomic.Int64
	for sent := int64(1); held.Load() < 8; sent++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(url)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 500 {
				failed.Add(1)
			}
		}()
		waitFor(t, "the request to reach a server", func() bool { return aHits.Load()+held.Load() >= sent })
	}

	old := p.rt.Load()
	write(yaml + "retries: {attempts: 0}\n")
	if err := p.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if p.rt.Load() == old {
		t.Fatal("the reload built no new runtime; the test proves nothing")
	}
	close(gate) // the held requests fail on the replaced runtime
	wg.Wait()
	if failed.Load() != 8 {
		t.Fatalf("%d requests answered 500, want the 8 held at b", failed.Load())
	}

	cur := p.rt.Load().upstreams["default"].pool
	sb := cur.Servers[1]
	if sb.Circuit() != upstream.CircuitOpen {
		t.Fatalf("b's circuit is %s after 8 failures, want open", sb.Circuit())
	}
	if len(cur.Available()) != 1 {
		t.Errorf("%d servers available with b's circuit open, want 1", len(cur.Available()))
	}
	// An unrelated drain and undrain of a rebuilds the pool's snapshot.
	st := adminState{p}
	if err := st.SetDrained("default", "a", true); err != nil {
		t.Fatal(err)
	}
	if err := st.SetDrained("default", "a", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b's circuit to leave open after open_time", func() bool { return sb.Circuit() != upstream.CircuitOpen })

	bHits.Store(0)
	for range 40 {
		if status, _, _ := get(t, http.DefaultClient, url); status != 200 {
			t.Fatalf("status %d, want 200", status)
		}
	}
	if n := bHits.Load(); n < 10 {
		t.Errorf("b served %d of 40 requests after its circuit's open time, want about half", n)
	}
	if sb.Circuit() != upstream.CircuitClosed {
		t.Errorf("b's circuit is %s after serving, want closed", sb.Circuit())
	}
}
