package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

// A backend that starts listening after the proxy's first check is in the
// pool after its first passing check, one fast interval later, not after
// healthy_threshold checks an interval apart.
func TestLateServerJoinsOnItsFirstPass(t *testing.T) {
	// Take a port, then let it go: connections to it are refused until the
	// server below takes it again.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	live := newBackend(t)
	pool := poolOf(t, upstream.NewRegistry(), []string{"http://" + addr, live.URL})
	var logs logBuffer
	c := NewChecker(pool, Config{
		// An hour: only the fast interval can bring a back in time.
		Interval: time.Hour, FastInterval: 20 * time.Millisecond, Path: "/health",
		HealthyThreshold: 2, UnhealthyThreshold: 30,
	}, logs.logger())
	c.Start(context.Background())
	defer c.Stop()
	eventually(t, "a out after its first failed check", func() bool { return names(pool) == "b" })

	var checks atomic.Int64
	late := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checks.Add(1)
	}))
	if late.Listener, err = net.Listen("tcp", addr); err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	late.Start()
	defer late.Close()
	eventually(t, "a back", func() bool { return names(pool) == "ab" })
	if n := checks.Load(); n != 1 {
		t.Errorf("a returned after %d passing checks; want 1 for a server never proven", n)
	}
	// The checker logs after it has put a back in the pool: wait for the
	// line rather than race it.
	eventually(t, "the up transition logged", func() bool { return logs.count("server up") > 0 })
	if n := logs.count("server up"); n != 1 {
		t.Errorf("logged %d up transitions, want 1:\n%s", n, logs.String())
	}
}

// The interval in effect follows the server's state: fast while it is
// unproven or changing, the configured one once settled.
func TestCheckIntervalFollowsTheState(t *testing.T) {
	ok := upstream.Check{OK: true, Result: "status 200"}
	bad := upstream.Check{Result: "connect: connection refused"}
	const fast, slow = time.Second, time.Minute
	tests := []struct {
		name   string
		checks []upstream.Check
		want   time.Duration
		up     bool
	}{
		{"never checked", nil, fast, true},
		{"failed its first check", []upstream.Check{bad}, fast, false},
		{"failed twice, never passed", []upstream.Check{bad, bad}, fast, false},
		{"failed a full run: settled down", []upstream.Check{bad, bad, bad}, slow, false},
		{"passed once after a full run of failures: rising", []upstream.Check{bad, bad, bad, ok}, fast, false},
		{"passed once when new: up, not settled", []upstream.Check{ok}, fast, true},
		{"passed twice: settled up", []upstream.Check{ok, ok}, slow, true},
		{"settled, then one failure: falling", []upstream.Check{ok, ok, bad}, fast, true},
		{"falling, then a pass: not settled yet", []upstream.Check{ok, ok, bad, ok}, fast, true},
		{"a full fall: down, settled", []upstream.Check{ok, ok, bad, bad, bad}, slow, false},
		{"down, then rise", []upstream.Check{ok, ok, bad, bad, bad, ok, ok}, slow, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := poolOf(t, upstream.NewRegistry(), []string{"http://10.0.0.1"})
			c := NewChecker(pool, Config{Interval: slow, FastInterval: fast, HealthyThreshold: 2, UnhealthyThreshold: 3}, nil)
			s := pool.Servers[0]
			for _, ch := range tt.checks {
				c.apply(s, ch)
			}
			if got := c.interval(s); got != tt.want {
				t.Errorf("interval %v, want %v", got, tt.want)
			}
			if s.Healthy() != tt.up {
				t.Errorf("healthy %v, want %v", s.Healthy(), tt.up)
			}
		})
	}
}

func TestFastIntervalDefault(t *testing.T) {
	tests := []struct{ interval, fast, want time.Duration }{
		{10 * time.Second, 0, time.Second},
		{0, 0, time.Second}, // the default interval, 10s
		{5 * time.Second, 0, 500 * time.Millisecond},
		{500 * time.Millisecond, 0, 100 * time.Millisecond},
		{50 * time.Millisecond, 0, 50 * time.Millisecond}, // never above the interval
		{10 * time.Second, 3 * time.Second, 3 * time.Second},
		{10 * time.Second, time.Minute, 10 * time.Second},
	}
	for _, tt := range tests {
		got := Config{Interval: tt.interval, FastInterval: tt.fast}.withDefaults().FastInterval
		if got != tt.want {
			t.Errorf("interval %v, fast_interval %v: fast interval %v, want %v", tt.interval, tt.fast, got, tt.want)
		}
	}
}

// A new checker (a reload) takes up each server's cadence where the last
// left it, rather than check every server again at once.
func TestCheckerResumesTheCadence(t *testing.T) {
	pool := poolOf(t, upstream.NewRegistry(), []string{"http://10.0.0.1", "http://10.0.0.2"})
	c := NewChecker(pool, Config{Interval: time.Minute, FastInterval: time.Second, HealthyThreshold: 1}, nil)
	now := time.Now()
	at := now.Add(-10 * time.Second)
	c.apply(pool.Servers[0], upstream.Check{At: at, OK: true, Latency: time.Second})
	if got, want := c.resume(pool.Servers[0], now), at.Add(61*time.Second); !got.Equal(want) {
		t.Errorf("checked 10s ago: next check at %v, want %v", got.Sub(now), want.Sub(now))
	}
	if got := c.resume(pool.Servers[1], now); !got.Equal(now) {
		t.Errorf("never checked: next check in %v, want at once", got.Sub(now))
	}
}

// A passing check ends a passive ejection that began before it: the
// check reached the server on a new connection.
func TestPassingCheckEndsAnEjection(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	pool := poolOf(t, upstream.NewRegistry(), []string{a.URL, b.URL})
	p := NewPassive(pool, PassiveConfig{Enabled: true, ConsecutiveFailures: 1, EjectionTime: time.Hour}, nil)
	p.Report(pool.Servers[0], true, time.Now())
	if names(pool) != "b" {
		t.Fatalf("available %q after a failure, want b", names(pool))
	}
	var logs logBuffer
	c := NewChecker(pool, Config{Interval: time.Hour, Path: "/health"}, logs.logger())
	c.Start(context.Background())
	defer c.Stop()
	eventually(t, "a readmitted by its check", func() bool { return names(pool) == "ab" })
	if pool.Servers[0].Scheduled(upstream.ReadmitTimer) {
		t.Error("the readmission timer is still armed")
	}
	eventually(t, "the readmission logged", func() bool { return logs.count("server readmitted") > 0 })
	if n := logs.count("server readmitted"); n != 1 {
		t.Errorf("logged %d readmissions, want 1:\n%s", n, logs.String())
	}

	// An ejection newer than the last check stands.
	c.apply(pool.Servers[0], upstream.Check{At: time.Now().Add(-time.Second), OK: true})
	p.Report(pool.Servers[0], true, time.Now())
	c.apply(pool.Servers[0], upstream.Check{At: time.Now().Add(-time.Second), OK: true})
	if names(pool) != "b" {
		t.Errorf("available %q: a check that started before the ejection ended it", names(pool))
	}
}
