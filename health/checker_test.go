package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

func TestCheckerFallAndRise(t *testing.T) {
	flaky, steady := newBackend(t), newBackend(t)
	pool := poolOf(t, upstream.NewRegistry(), []string{flaky.URL, steady.URL})
	var logs logBuffer
	c := NewChecker(pool, Config{
		Interval: 20 * time.Millisecond, Timeout: 5 * time.Second, Path: "/health",
		UnhealthyThreshold: 3, HealthyThreshold: 2,
	}, logs.logger())
	events := make(chan event, 10)
	c.OnTransition = func(s *upstream.Server, healthy bool, reason string) {
		events <- event{s.Name, healthy, reason, flaky.fails.Load()}
	}
	c.Start(context.Background())
	defer c.Stop()

	// Clients keep being served throughout: the pool only ever holds
	// servers that answer.
	stop := make(chan struct{})
	var clientErrs atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			avail := pool.Available()
			if len(avail) == 0 {
				clientErrs.Add(1)
				continue
			}
			resp, err := http.Get(avail[0].URL.String() + "/")
			if err != nil || resp.StatusCode != 200 {
				clientErrs.Add(1)
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
	})
	defer func() { close(stop); wg.Wait(); http.DefaultTransport.(*http.Transport).CloseIdleConnections() }()

	eventually(t, "first check", func() bool { _, ok := pool.Servers[0].LastCheck(); return ok })
	flaky.failing.Store(true)
	down := <-events
	if down.healthy || down.server != "a" || down.fails != 3 {
		t.Fatalf("got %+v, want a down after exactly 3 failed checks", down)
	}
	if want := "GET /health: status 500"; down.reason != want {
		t.Errorf("reason %q, want %q", down.reason, want)
	}
	if got := names(pool); got != "b" {
		t.Errorf("available %q, want b", got)
	}
	checksAtUp := flaky.checks.Load()
	flaky.failing.Store(false)
	up := <-events
	if !up.healthy || up.server != "a" {
		t.Fatalf("got %+v, want a up", up)
	}
	if passes := flaky.checks.Load() - checksAtUp; passes < 2 {
		t.Errorf("a returned after %d passing checks, want 2", passes)
	}
	if got := names(pool); got != "ab" {
		t.Errorf("available %q, want ab", got)
	}
	if n := logs.count("server down"); n != 1 {
		t.Errorf("logged %d down transitions, want 1:\n%s", n, logs.String())
	}
	if n := clientErrs.Load(); n != 0 {
		t.Errorf("%d client requests failed meanwhile", n)
	}
	st := pool.Servers[0].Status()
	if !st.Healthy || !strings.HasPrefix(st.Reason, "GET /health: status 200") {
		t.Errorf("status %+v", st)
	}
}

func TestCheckerFirstRoundAtStart(t *testing.T) {
	// A one-hour interval: only a round at start can find the dead server.
	pool := poolOf(t, upstream.NewRegistry(), []string{refusedURL(t), newBackend(t).URL})
	c := NewChecker(pool, Config{Interval: time.Hour, Path: "/health"}, nil)
	c.Start(context.Background())
	defer c.Stop()
	eventually(t, "a to leave", func() bool { return names(pool) == "b" })
	st := pool.Servers[0].Status()
	if want := "GET /health: connect: connection refused"; st.Reason != want {
		t.Errorf("reason %q, want %q", st.Reason, want)
	}
	if !pool.Servers[1].Healthy() {
		t.Error("b down")
	}
}

func TestBackupTakesOver(t *testing.T) {
	a, b, backup := newBackend(t), newBackend(t), newBackend(t)
	pool := poolOf(t, upstream.NewRegistry(), []string{a.URL, b.URL, backup.URL}, 2)
	c := NewChecker(pool, Config{
		Interval: 20 * time.Millisecond, Timeout: 5 * time.Second, Path: "/health",
		UnhealthyThreshold: 1, HealthyThreshold: 1,
	}, nil)
	c.Start(context.Background())
	defer c.Stop()
	steps := []struct {
		failing []*backend
		want    string
	}{
		{nil, "ab"},
		{[]*backend{a}, "b"},
		{[]*backend{a, b}, "c"}, // only now does the backup serve
		{[]*backend{b}, "a"},
		{[]*backend{a, b, backup}, ""},
		{nil, "ab"},
	}
	for _, step := range steps {
		for _, be := range []*backend{a, b, backup} {
			be.failing.Store(false)
		}
		for _, be := range step.failing {
			be.failing.Store(true)
		}
		eventually(t, "available = "+step.want, func() bool { return names(pool) == step.want })
	}
}

func TestProbe(t *testing.T) {
	release := make(chan struct{})
	var host atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host)
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte(`{"status":"ready"}`))
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/hang":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	defer close(release)
	tests := []struct {
		name   string
		target string
		cfg    Config
		ok     bool
		result string
	}{
		{"ok", srv.URL, Config{Path: "/ok"}, true, "status 200"},
		{"not found", srv.URL, Config{Path: "/nope"}, false, "status 404"},
		{"redirect not followed", srv.URL, Config{Path: "/moved", ExpectedStatus: StatusRanges{{200, 299}}}, false, "status 302"},
		{"redirect passes default", srv.URL, Config{Path: "/moved"}, true, "status 302"},
		{"listed codes", srv.URL, Config{Path: "/nocontent", ExpectedStatus: StatusRanges{{200, 200}, {204, 204}}}, true, "status 204"},
		{"body found", srv.URL, Config{Path: "/ok", ExpectedBody: `"ready"`}, true, "status 200"},
		{"body missing", srv.URL, Config{Path: "/ok", ExpectedBody: "healthy"}, false, `status 200, body lacks "healthy"`},
		{"timeout", srv.URL, Config{Path: "/hang", Timeout: 50 * time.Millisecond}, false, "timeout after 50ms"},
		{"refused", refusedURL(t), Config{}, false, "connect: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := poolOf(t, upstream.NewRegistry(), []string{tt.target})
			c := NewChecker(pool, tt.cfg, nil)
			defer c.Stop()
			got := c.probe(context.Background(), c.targets[0])
			if got.OK != tt.ok || got.Result != tt.result {
				t.Errorf("probe = %v %q, want %v %q", got.OK, got.Result, tt.ok, tt.result)
			}
		})
	}
	t.Run("host header", func(t *testing.T) {
		pool := poolOf(t, upstream.NewRegistry(), []string{srv.URL})
		c := NewChecker(pool, Config{Path: "/ok", Host: "health.internal"}, nil)
		defer c.Stop()
		c.probe(context.Background(), c.targets[0])
		if got := host.Load(); got != "health.internal" {
			t.Errorf("Host = %v, want health.internal", got)
		}
	})
}

// recordingSetter records verdicts and applies none.
type recordingSetter struct {
	mu    sync.Mutex
	calls []string
}

func (r *recordingSetter) SetHealthy(s *upstream.Server, healthy bool, reason string, _ time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s.Name+" "+reason)
	return true
}

func (r *recordingSetter) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func TestCheckerWritesThroughSetter(t *testing.T) {
	pool := poolOf(t, upstream.NewRegistry(), []string{refusedURL(t)})
	rec := &recordingSetter{}
	c := NewChecker(pool, Config{Interval: time.Hour}, nil)
	c.Setter = rec
	c.Start(context.Background())
	eventually(t, "a verdict", func() bool { return rec.len() == 1 })
	c.Stop()
	c.Stop() // idempotent
	if !pool.Servers[0].Healthy() || names(pool) != "a" {
		t.Error("the checker wrote around its Setter")
	}
	if want := "a GET /: connect: connection refused"; rec.calls[0] != want {
		t.Errorf("call %q, want %q", rec.calls[0], want)
	}
}

func TestCheckerStopBeforeStart(t *testing.T) {
	pool := poolOf(t, upstream.NewRegistry(), []string{"http://127.0.0.1:1"})
	c := NewChecker(pool, Config{}, nil)
	c.Stop()
	c.Start(context.Background()) // does nothing after Stop
	c.Stop()
}

func TestCheckerStopsWithContext(t *testing.T) {
	pool := poolOf(t, upstream.NewRegistry(), []string{newBackend(t).URL})
	c := NewChecker(pool, Config{Interval: 10 * time.Millisecond}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	c.Start(ctx)
	eventually(t, "a check", func() bool { _, ok := pool.Servers[0].LastCheck(); return ok })
	cancel()
	c.Stop() // returns once the loop has seen ctx end; goleak checks the rest
}

func TestJitter(t *testing.T) {
	for range 1000 {
		if d := jitter(10 * time.Second); d < 9*time.Second || d > 11*time.Second {
			t.Fatalf("jitter(10s) = %v", d)
		}
	}
}
