package tracing

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tbsphathuynh/proxy/internal/reqinfo"
)

// The client's span, as a W3C traceparent (version-traceid-parentid-flags).
const (
	clientTraceID = "0af7651916cd43dd8448eb211c80319c"
	clientSpanID  = "b7ad6b7169203331"
	clientSampled = "00-" + clientTraceID + "-" + clientSpanID + "-01"
	clientDropped = "00-" + clientTraceID + "-" + clientSpanID + "-00"
)

// withInfo stands for accesslog.Track: it puts a fresh Info in the
// request context before the tracing middleware runs.
func withInfo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &reqinfo.Info{RequestID: "req-1"}
		next.ServeHTTP(w, r.WithContext(reqinfo.With(r.Context(), info)))
	})
}

func newTracer(t testing.TB, cfg Config) *Tracer {
	t.Helper()
	tr, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr
}

func shutdown(t testing.TB, tr *Tracer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// countingHandler is comparable, so the test can check that Middleware
// returns it unchanged (a HandlerFunc cannot be compared).
type countingHandler struct{ n int }

func (h *countingHandler) ServeHTTP(http.ResponseWriter, *http.Request) { h.n++ }

func TestOffIsIdentity(t *testing.T) {
	off, err := New(context.Background(), Config{SampleRatio: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	for name, tr := range map[string]*Tracer{"empty endpoint": off, "zero value": {}, "nil": nil} {
		next := &countingHandler{}
		if got := tr.Middleware(next); got != http.Handler(next) {
			t.Errorf("%s: Middleware returned %T, want next itself", name, got)
		}
		w, r := httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)
		h := tr.Middleware(next)
		if allocs := testing.AllocsPerRun(100, func() { h.ServeHTTP(w, r) }); allocs != 0 {
			t.Errorf("%s: %v allocs per request, want 0", name, allocs)
		}
		if allocs := testing.AllocsPerRun(100, func() { _ = tr.Middleware(next) }); allocs != 0 {
			t.Errorf("%s: Middleware allocates %v, want 0", name, allocs)
		}
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Errorf("%s: Shutdown: %v", name, err)
		}
	}
}

func TestShutdownLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c := newCollector(t)
	defer c.Close() // before goleak looks: the collector's goroutines are the test's
	tr, err := New(context.Background(), Config{Endpoint: c.URL, SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	withInfo(tr.Middleware(&countingHandler{})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	shutdown(t, tr)
	c.waitFor(t, 1)
	shutdown(t, tr) // twice is fine
}

// TestExportFailureLoggedOnTransitions: a collector that refuses exports
// gives one warning, not one per batch, and one line when it recovers.
func TestExportFailureLoggedOnTransitions(t *testing.T) {
	c := newCollector(t)
	c.status.Store(http.StatusBadRequest) // not retried by the exporter
	var buf syncBuffer
	tr := newTracer(t, Config{Endpoint: c.URL, SampleRatio: 1, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	h := tr.Middleware(&countingHandler{})
	serveAndFlush := func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		if err := tr.provider.ForceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	serveAndFlush()
	serveAndFlush()
	c.status.Store(0)
	serveAndFlush()
	serveAndFlush()

	log := buf.String()
	if n := strings.Count(log, "tracing: export failing"); n != 1 {
		t.Errorf("%d failure lines, want 1:\n%s", n, log)
	}
	if n := strings.Count(log, "tracing: export recovered"); n != 1 || !strings.Contains(log, "spans_lost=2") {
		t.Errorf("%d recovery lines, want 1 with spans_lost=2:\n%s", n, log)
	}
	if got := len(c.received()); got != 2 {
		t.Errorf("collector has %d spans, want the 2 sent after it recovered", got)
	}
}

type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in      string
		want    endpoint
		wantErr bool
	}{
		{in: "http://127.0.0.1:4318", want: endpoint{"127.0.0.1:4318", "/v1/traces", true}},
		{in: "http://127.0.0.1:4318/", want: endpoint{"127.0.0.1:4318", "/v1/traces", true}},
		{in: "https://otlp.example.com", want: endpoint{"otlp.example.com", "/v1/traces", false}},
		{in: "https://otlp.example.com/otlp", want: endpoint{"otlp.example.com", "/otlp/v1/traces", false}},
		{in: "http://c:4318/v1/traces", want: endpoint{"c:4318", "/v1/traces", true}},
		{in: "collector:4318", want: endpoint{"collector:4318", "/v1/traces", false}},
		{in: "[::1]:4318", want: endpoint{"[::1]:4318", "/v1/traces", false}},
		{in: "collector", wantErr: true},
		{in: ":4318", wantErr: true},
		{in: "grpc://c:4317", wantErr: true},
		{in: "http://", wantErr: true},
		{in: "http://user:pw@c:4318", wantErr: true},
		{in: "http://c:4318?x=1", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseEndpoint(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseEndpoint(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("parseEndpoint(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Endpoint: "http://c:4318", SampleRatio: 1.5},
		{Endpoint: "http://c:4318", SampleRatio: -0.1},
		{Endpoint: "ftp://c:21", SampleRatio: 0.1},
	} {
		if tr, err := New(context.Background(), cfg); err == nil {
			_ = tr.Shutdown(context.Background())
			t.Errorf("New(%+v) succeeded, want an error", cfg)
		}
	}
}
