package server

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/metrics"
)

// A panic net/http recovers itself reaches the log at ERROR, stack and
// all, and proxy_panics_total; net/http's other messages stay at DEBUG.
func TestNetHTTPPanicsAreLoggedAndCounted(t *testing.T) {
	var logs bytes.Buffer
	cfg, err := config.Parse("t.yaml", []byte("listen: 127.0.0.1:0\nadmin: {listen: \"\"}\nhealth_checks: {enabled: false}\nservers:\n  - url: http://127.0.0.1:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	el := s.errorLog()
	el.Printf("http: TLS handshake error from 1.2.3.4:5: EOF")
	el.Printf("http: panic serving 1.2.3.4:5: boom\ngoroutine 7 [running]:\nmain.f()")
	if got := panicsTotal(t, s); got != 1 {
		t.Errorf("proxy_panics_total = %v, want 1", got)
	}
	out := logs.String()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "goroutine 7 [running]") {
		t.Errorf("panic not logged at ERROR with its stack:\n%s", out)
	}
	if strings.Contains(out, "handshake") {
		t.Errorf("net/http's noise logged above DEBUG:\n%s", out)
	}
}

// A panic in the handler chain and one on the fast path are logged at
// ERROR and counted.
func TestHandlerPanicsAreCounted(t *testing.T) {
	var logs bytes.Buffer
	cfg, err := config.Parse("t.yaml", []byte("listen: 127.0.0.1:0\nadmin: {listen: \"\"}\nhealth_checks: {enabled: false}\nservers:\n  - url: http://127.0.0.1:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.fastPathPanic("1.2.3.4:5", "boom", []byte("goroutine 9 [running]:"))
	if got := panicsTotal(t, s); got != 1 {
		t.Errorf("proxy_panics_total = %v, want 1", got)
	}
	if out := logs.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "goroutine 9") {
		t.Errorf("fast path panic not logged at ERROR with its stack:\n%s", out)
	}
}

func panicsTotal(t *testing.T, s *Server) float64 {
	t.Helper()
	mfs, err := s.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == metrics.PanicsTotal {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("%s not exported", metrics.PanicsTotal)
	return 0
}
