package health

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

// reload builds the pool a reload would over the same registry, and
// closes the old one as the server does once the new runtime is in.
func reload(t *testing.T, reg *upstream.Registry, old *upstream.Pool, urls []string) *upstream.Pool {
	t.Helper()
	fresh := poolOf(t, reg, urls)
	old.Close()
	return fresh
}

func TestBreakerOfAReplacedRuntimeStillCounts(t *testing.T) {
	reg := upstream.NewRegistry()
	urls := []string{"http://10.0.0.1", "http://10.0.0.2"}
	cfg := BreakerConfig{ConsecutiveFailures: 3, Window: 10 * time.Second, OpenTime: 50 * time.Millisecond}
	old := poolOf(t, reg, urls)
	oldBr := NewBreaker(old, cfg, nil)
	now := time.Now()
	oldBr.Report(old.Servers[1], true, now)
	oldBr.Report(old.Servers[1], true, now)

	fresh := reload(t, reg, old, urls)
	newBr := NewBreaker(fresh, cfg, nil)
	var opened, halfOpened atomic.Int64
	// What the new pool served when b's circuit opened, taken in the
	// transition hook: that runs before the half-open timer is armed, so
	// a stall of the test (open_time is only 50ms) cannot show b already
	// half-open instead.
	var servedWhenOpened atomic.Value
	for _, br := range []*Breaker{oldBr, newBr} {
		br.OnTransition = func(s *upstream.Server, c upstream.Circuit, _ string) {
			switch c {
			case upstream.CircuitOpen:
				opened.Add(1)
				servedWhenOpened.Store(names(fresh))
			case upstream.CircuitHalfOpen:
				halfOpened.Add(1)
			}
		}
	}
	// The third failure in a row finishes on the replaced runtime: the
	// run is the server's, so it opens the circuit.
	oldBr.Report(old.Servers[1], true, now)
	b := fresh.Servers[1]
	if opened.Load() != 1 {
		t.Fatalf("circuit %s after 3 failures across a reload, want it opened", b.Circuit())
	}
	if got := servedWhenOpened.Load(); got != "a" {
		t.Errorf("the new pool served %q when b's circuit opened, want a", got)
	}
	eventually(t, "b half-open after the open time", func() bool { return b.Circuit() == upstream.CircuitHalfOpen })
	if names(fresh) != "ab" {
		t.Errorf("the new pool serves %q with b half-open, want ab", names(fresh))
	}
	newBr.Report(b, false, time.Now())
	if b.Circuit() != upstream.CircuitClosed {
		t.Errorf("circuit %s after a good probe, want closed", b.Circuit())
	}
	if opened.Load() != 1 || halfOpened.Load() != 1 {
		t.Errorf("%d openings and %d half-openings, want one each", opened.Load(), halfOpened.Load())
	}
}

func TestNewBreakerRearmsWithItsOpenTime(t *testing.T) {
	reg := upstream.NewRegistry()
	urls := []string{"http://10.0.0.1", "http://10.0.0.2"}
	old := poolOf(t, reg, urls)
	oldBr := NewBreaker(old, BreakerConfig{ConsecutiveFailures: 1, OpenTime: time.Hour}, nil)
	oldBr.Report(old.Servers[0], true, time.Now())
	// The reload shortens open_time: the circuit follows the new one.
	fresh := reload(t, reg, old, urls)
	NewBreaker(fresh, BreakerConfig{ConsecutiveFailures: 1, OpenTime: 20 * time.Millisecond}, nil)
	eventually(t, "a half-open after the new open time", func() bool { return fresh.Servers[0].Circuit() == upstream.CircuitHalfOpen })
}

func TestPassiveOfAReplacedRuntimeStillEjects(t *testing.T) {
	reg := upstream.NewRegistry()
	urls := []string{"http://10.0.0.1", "http://10.0.0.2"}
	cfg := PassiveConfig{Enabled: true, ConsecutiveFailures: 2, EjectionTime: 50 * time.Millisecond}
	// The readmission timer asks the clock whether the ejection is over:
	// stopped, it keeps b out however long the test stalls, until moved.
	now := time.Now()
	var clock fakeClock
	clock.set(now)
	old := poolOf(t, reg, urls)
	oldP := NewPassive(old, cfg, nil)
	oldP.Now = clock.now
	oldP.Report(old.Servers[1], true, now)

	fresh := reload(t, reg, old, urls)
	NewPassive(fresh, cfg, nil)
	oldP.Report(old.Servers[1], true, now)
	if names(fresh) != "a" {
		t.Fatalf("the new pool serves %q after b failed twice across a reload, want a", names(fresh))
	}
	clock.set(now.Add(cfg.EjectionTime))
	eventually(t, "b readmitted", func() bool { return names(fresh) == "ab" })
	if d, _ := fresh.Servers[1].EjectBackoff(); d != 1 {
		t.Errorf("backoff doublings %d after one ejection, want 1", d)
	}
}
