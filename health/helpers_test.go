package health

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tbsphathuynh/proxy/upstream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend is a test server whose health endpoint can be made to fail while
// every other path keeps answering 200, like an application being drained.
type backend struct {
	*httptest.Server
	failing atomic.Bool
	checks  atomic.Int64 // health requests seen
	fails   atomic.Int64 // health requests answered 500
}

func newBackend(t *testing.T) *backend {
	b := &backend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			w.Write([]byte("hello"))
			return
		}
		b.checks.Add(1)
		if b.failing.Load() {
			b.fails.Add(1)
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(b.Close)
	return b
}

// poolOf builds a pool over the given URLs; backups are marked by index.
func poolOf(t testing.TB, reg *upstream.Registry, urls []string, backups ...int) *upstream.Pool {
	t.Helper()
	servers := make([]*upstream.Server, len(urls))
	for i, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		servers[i] = &upstream.Server{
			Name: string(rune('a' + i)), URL: u, Weight: 1,
			State: reg.State(upstream.Key("test", raw)),
		}
	}
	for _, i := range backups {
		servers[i].Backup = true
	}
	// The states' timers end with the test, as a proxy's end with it.
	t.Cleanup(reg.Close)
	return upstream.NewPool("test", servers)
}

// names lists the names of the pool's available servers.
func names(p *upstream.Pool) string {
	var b strings.Builder
	for _, s := range p.Available() {
		b.WriteString(s.Name)
	}
	return b.String()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// event is one transition seen by OnTransition.
type event struct {
	server  string
	healthy bool
	reason  string
	fails   int64 // the backend's failed checks at that moment
}

// refusedURL returns the URL of a listener that was closed, so connecting
// to it is refused.
func refusedURL(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

// fakeClock is a clock the test moves; safe for the timers' goroutines.
type fakeClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
