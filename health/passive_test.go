package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

func TestPassiveEjectsRefusingServer(t *testing.T) {
	dead, live := refusedURL(t), newBackend(t).URL
	pool := poolOf(t, upstream.NewRegistry(), []string{dead, live})
	var logs logBuffer
	const ejection = 300 * time.Millisecond
	p := NewPassive(pool, PassiveConfig{Enabled: true, ConsecutiveFailures: 3, EjectionTime: ejection}, logs.logger())
	// The readmission timer asks p's clock whether the ejection is over;
	// held before the first attempt, it keeps the server out however long
	// the test stalls, until moved.
	var clock fakeClock
	clock.set(time.Now())
	p.Now = clock.now
	events := make(chan event, 4)
	p.OnTransition = func(s *upstream.Server, healthy bool, reason string) {
		events <- event{server: s.Name, healthy: healthy, reason: reason}
	}
	s := pool.Servers[0]
	var lastErr error
	attempt := func() {
		start := time.Now()
		resp, err := http.Get(dead)
		if err == nil {
			resp.Body.Close()
			t.Fatal("closed listener answered")
		}
		lastErr = err
		p.Observe(s, 0, err, time.Since(start))
	}
	for range 2 {
		attempt()
	}
	if names(pool) != "ab" {
		t.Fatal("ejected before 3 failures")
	}
	attempt()
	if got := names(pool); got != "b" {
		t.Fatalf("after 3 refused connections available = %q, want b", got)
	}
	ev := <-events
	if ev.healthy || ev.reason != "ejected: 3 consecutive failures" {
		t.Errorf("transition %+v", ev)
	}
	for range 5 { // stragglers in flight when it was ejected
		p.Observe(s, 0, lastErr, time.Millisecond)
	}
	if n := logs.count("server ejected"); n != 1 {
		t.Errorf("logged %d ejections, want 1", n)
	}
	if s.Latency() < FailureLatency {
		t.Errorf("latency after failures %v, want ≥ %v", s.Latency(), FailureLatency)
	}
	// No traffic, no active checks: the timer alone brings it back.
	clock.set(time.Now().Add(ejection))
	if ev := <-events; !ev.healthy {
		t.Errorf("transition %+v, want readmission", ev)
	}
	eventually(t, "readmission", func() bool { return names(pool) == "ab" })
	if s.Ejections() != 1 {
		t.Errorf("ejections = %d, want 1", s.Ejections())
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		servers, percent, want int
	}{
		{4, 50, 2},
		{4, 0, 2}, // default 50
		{3, 50, 1},
		{1, 50, 0}, // ejecting the only server would turn 502s into 503s
		{4, 25, 1},
		{4, 100, 4},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d servers %d%%", tt.servers, tt.percent), func(t *testing.T) {
			urls := make([]string, tt.servers)
			for i := range urls {
				urls[i] = fmt.Sprintf("http://10.0.0.%d", i+1)
			}
			pool := poolOf(t, upstream.NewRegistry(), urls)
			p := NewPassive(pool, PassiveConfig{Enabled: true, ConsecutiveFailures: 2, EjectionTime: time.Hour, MaxEjectionPercent: tt.percent}, nil)
			now := time.Now()
			for range 10 { // every server fails, over and over
				for _, s := range pool.Servers {
					p.Report(s, true, now)
				}
			}
			ejected := 0
			for _, s := range pool.Servers {
				if s.Ejected(now) {
					ejected++
				}
			}
			if ejected != tt.want {
				t.Errorf("%d ejected, want %d", ejected, tt.want)
			}
			if len(pool.Available()) != tt.servers-tt.want {
				t.Errorf("%d available", len(pool.Available()))
			}
		})
	}
}

func TestEjectionBackoff(t *testing.T) {
	pool := poolOf(t, upstream.NewRegistry(), []string{"http://10.0.0.1", "http://10.0.0.2"})
	p := NewPassive(pool, PassiveConfig{
		Enabled: true, ConsecutiveFailures: 1,
		EjectionTime: time.Hour, MaxEjectionTime: 3 * time.Hour,
	}, nil)
	s := pool.Servers[0]
	now := time.Now()
	for _, want := range []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour, 3 * time.Hour} {
		p.Report(s, true, now)
		if got := s.EjectedUntil().Sub(now); got != want {
			t.Fatalf("ejected for %v, want %v", got, want)
		}
		// Readmit by hand where the timer would, and fail again at once.
		now = s.EjectedUntil()
		s.ReadmitAt(now)
	}
	// A long good spell forgives the past.
	now = now.Add(4 * time.Hour)
	p.Report(s, true, now)
	if got := s.EjectedUntil().Sub(now); got != time.Hour {
		t.Errorf("after a good spell ejected for %v, want 1h", got)
	}
}

func TestSuccessResetsRun(t *testing.T) {
	pool := poolOf(t, upstream.NewRegistry(), []string{"http://10.0.0.1", "http://10.0.0.2"})
	p := NewPassive(pool, PassiveConfig{Enabled: true, ConsecutiveFailures: 5}, nil)
	s, now := pool.Servers[0], time.Now()
	for range 3 {
		for range 4 {
			p.Report(s, true, now)
		}
		p.Report(s, false, now)
	}
	if s.Ejected(now) || s.ConsecutiveFailures() != 0 || s.Failures() != 12 {
		t.Errorf("ejected=%v run=%d failures=%d", s.Ejected(now), s.ConsecutiveFailures(), s.Failures())
	}
}

func TestObserve(t *testing.T) {
	pool := poolOf(t, upstream.NewRegistry(), []string{"http://10.0.0.1", "http://10.0.0.2"})
	dial := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: err}}
	}
	tests := []struct {
		name   string
		on5xx  bool
		status int
		err    error
		failed bool
	}{
		{"ok", false, 200, nil, false},
		{"5xx ignored", false, 503, nil, false},
		{"5xx counted", true, 503, nil, true},
		{"4xx never", true, 404, nil, false},
		{"connection refused", false, 0, dial(syscall.ECONNREFUSED), true},
		{"connect timeout", false, 0, &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}, true},
		{"reset before any answer", false, 0, fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"closed before any answer", false, 0, fmt.Errorf("reading the head: %w", io.ErrUnexpectedEOF), true},
		{"no answer within the response timeout", false, 0, timeoutErr{}, false},
		{"malformed answer", false, 0, errors.New(`malformed HTTP status code "abc"`), false},
		{"client gone", true, 0, fmt.Errorf("proxy: %w", context.Canceled), false},
		{"proxy out of descriptors", false, 0, dial(syscall.EMFILE), false},
		{"proxy out of ports", false, 0, dial(syscall.EADDRNOTAVAIL), false},
	}
	for _, tt := range tests {
		p := NewPassive(pool, PassiveConfig{Enabled: true, On5xx: tt.on5xx}, nil)
		s := pool.Servers[0]
		before := s.Failures()
		p.Observe(s, tt.status, tt.err, time.Millisecond)
		if failed := s.Failures() > before; failed != tt.failed {
			t.Errorf("%s: counted as failure = %v, want %v", tt.name, failed, tt.failed)
		}
		s.ReportSuccess()
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// What net/http's transport returns for a server that refuses, or that
// accepts and closes before answering, is a connection failure.
func TestConnectionFailuresFromTheTransport(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-done }()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	for _, target := range []string{"http://" + ln.Addr().String() + "/", refusedURL(t) + "/"} {
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		resp, err := tr.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s answered", target)
		}
		if !connectionFailure(err) {
			t.Errorf("%s: %v (%T) is not taken for a connection failure", target, err, err)
		}
	}
}

// The last usable server is never ejected: the others being down by
// active checks, ejecting it would turn its 502s into 503s for all.
func TestLastUsableServerNotEjected(t *testing.T) {
	pool := poolOf(t, upstream.NewRegistry(), []string{"http://10.0.0.1", "http://10.0.0.2", "http://10.0.0.3"})
	p := NewPassive(pool, PassiveConfig{Enabled: true, ConsecutiveFailures: 1, EjectionTime: time.Hour}, nil)
	now := time.Now()
	pool.Servers[1].SetHealthy(false, "GET /: status 500", now)
	pool.Servers[2].SetDrained(true)
	for range 5 {
		p.Report(pool.Servers[0], true, now)
	}
	if names(pool) != "a" {
		t.Errorf("available %q, want a kept", names(pool))
	}
	pool.Servers[2].SetDrained(false)
	p.Report(pool.Servers[0], true, now)
	if names(pool) != "c" {
		t.Errorf("available %q once c is back, want a ejected", names(pool))
	}
}

func TestDisabledPassiveOnlyCounts(t *testing.T) {
	pool := poolOf(t, upstream.NewRegistry(), []string{"http://10.0.0.1", "http://10.0.0.2"})
	p := NewPassive(pool, PassiveConfig{ConsecutiveFailures: 1}, nil)
	p.Report(pool.Servers[0], true, time.Now())
	if names(pool) != "ab" || pool.Servers[0].Failures() != 1 {
		t.Error("a disabled Passive ejected a server or did not count")
	}
}

func TestPassiveResumesAcrossReload(t *testing.T) {
	reg := upstream.NewRegistry()
	urls := []string{"http://10.0.0.1", "http://10.0.0.2"}
	const ejection = 500 * time.Millisecond
	now := time.Now()
	var clock fakeClock // held, so a stall of the test cannot end the ejection
	clock.set(now)
	old := poolOf(t, reg, urls)
	p := NewPassive(old, PassiveConfig{Enabled: true, ConsecutiveFailures: 1, EjectionTime: ejection}, nil)
	p.Now = clock.now
	p.Report(old.Servers[0], true, now)
	old.Close() // the old runtime goes away while a is ejected

	fresh := poolOf(t, reg, urls) // same states, by key
	if names(fresh) != "b" {
		t.Fatalf("new pool serves %q, want the ejection kept", names(fresh))
	}
	// The new runtime re-arms the timer on its own (real) clock.
	NewPassive(fresh, PassiveConfig{}, nil) // even with ejection now off
	eventually(t, "readmission by the new runtime", func() bool { return names(fresh) == "ab" })
}

func TestReportAllocs(t *testing.T) {
	pool := poolOf(t, upstream.NewRegistry(), []string{"http://10.0.0.1", "http://10.0.0.2"})
	p := NewPassive(pool, PassiveConfig{Enabled: true}, nil)
	s := pool.Servers[0]
	if n := testing.AllocsPerRun(1000, func() { p.Report(s, false, time.Now()) }); n != 0 {
		t.Errorf("Report success: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { p.Observe(s, 200, nil, time.Millisecond) }); n != 0 {
		t.Errorf("Observe success: %v allocs, want 0", n)
	}
}

func BenchmarkReport(b *testing.B) {
	pool := poolOf(b, upstream.NewRegistry(), []string{"http://10.0.0.1", "http://10.0.0.2"})
	p := NewPassive(pool, PassiveConfig{Enabled: true}, nil)
	s := pool.Servers[0]
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Observe(s, 200, nil, time.Millisecond)
		}
	})
}
