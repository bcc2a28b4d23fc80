package upstream

import (
	"slices"
	"sync"
	"testing"
	"time"
)

func TestLatencyEWMA(t *testing.T) {
	s := NewRegistry().State("k")
	t0 := time.Unix(1_700_000_000, 0)
	if s.Latency() != 0 || s.LatencyCost(t0) != 0 {
		t.Fatal("latency before any sample")
	}
	s.ObserveLatencyAt(100*time.Millisecond, t0)
	// A peak replaces the average at once.
	s.ObserveLatencyAt(time.Second, t0.Add(time.Millisecond))
	if s.Latency() != time.Second {
		t.Errorf("after a peak: %v, want 1s", s.Latency())
	}
	// Samples close together move a high average slowly...
	s.ObserveLatencyAt(10*time.Millisecond, t0.Add(2*time.Millisecond))
	if s.Latency() < 900*time.Millisecond {
		t.Errorf("one fast sample right after: %v, want still ≈1s", s.Latency())
	}
	// ...but after a quiet spell the new samples take over: a server that
	// recovered looks fast again.
	s.ObserveLatencyAt(10*time.Millisecond, t0.Add(time.Minute))
	if got := s.Latency(); got > 15*time.Millisecond {
		t.Errorf("after a minute: %v, want ≈10ms", got)
	}
	// With no samples the ranking cost decays toward zero, so the server
	// is eventually tried again.
	last := t0.Add(time.Minute)
	c0, c1 := s.LatencyCost(last), s.LatencyCost(last.Add(LatencyDecay))
	if c1 >= c0/2 || c1 <= 0 {
		t.Errorf("cost %v then %v one decay later, want about 1/e", c0, c1)
	}
	if s.Latency() != time.Duration(c0) {
		t.Error("Latency should show the undecayed average")
	}
}

func TestSlowStartRamp(t *testing.T) {
	reg := NewRegistry()
	s := &Server{Name: "a", Weight: 4, SlowStart: 10 * time.Second, State: reg.State("a")}
	t0 := time.Unix(1_700_000_000, 0)
	s.SetHealthy(false, "down", t0)
	s.SetHealthy(true, "up", t0)
	tests := []struct {
		at   time.Duration
		want float64
	}{
		{0, 0.4}, {5 * time.Second, 2.2}, {10 * time.Second, 4}, {time.Hour, 4},
	}
	for _, tt := range tests {
		if got := s.EffectiveWeight(t0.Add(tt.at)); got < tt.want-1e-9 || got > tt.want+1e-9 {
			t.Errorf("weight at +%v = %v, want %v", tt.at, got, tt.want)
		}
	}
	if s.Ramping() {
		t.Error("still ramping after SlowStart")
	}
	// Readmission after an ejection ramps too.
	s.EjectAt(t0, t0.Add(time.Minute), "x")
	s.ReadmitAt(t0.Add(time.Minute))
	if got := s.Ramp(t0.Add(time.Minute)); got != MinRamp {
		t.Errorf("ramp right after readmission = %v, want %v", got, MinRamp)
	}
}

func TestTryAcquireCap(t *testing.T) {
	s := &Server{MaxConns: 10, State: NewRegistry().State("a")}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 100 {
		wg.Go(func() {
			if s.TryAcquire() {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 10 || s.InFlight() != 10 || !s.Full() {
		t.Errorf("admitted %d, in flight %d, want 10", ok, s.InFlight())
	}
}

func TestEjectAt(t *testing.T) {
	s := NewRegistry().State("a")
	t0 := time.Unix(1_700_000_000, 0)
	for range 3 {
		s.ReportFailure()
	}
	if !s.EjectAt(t0, t0.Add(time.Minute), "r") || s.EjectAt(t0.Add(time.Second), t0.Add(time.Hour), "r") {
		t.Error("EjectAt must report only the transition")
	}
	if !s.Ejected(t0.Add(59*time.Second)) || s.Ejected(t0.Add(time.Minute)) {
		t.Error("ejection window wrong")
	}
	if s.ConsecutiveFailures() != 0 || s.Failures() != 3 || s.Ejections() != 1 {
		t.Errorf("run %d failures %d ejections %d", s.ConsecutiveFailures(), s.Failures(), s.Ejections())
	}
	if !s.ReadmitAt(t0.Add(time.Minute)) || s.ReadmitAt(t0.Add(time.Minute)) {
		t.Error("ReadmitAt must report only the transition")
	}
}

func TestStateTimers(t *testing.T) {
	s := NewRegistry().State("k")
	fired := make(chan string, 2)
	s.Schedule(HalfOpenTimer, time.Hour, func() { fired <- "first" })
	// A second arming replaces the first: one timer of a kind per state.
	s.Schedule(HalfOpenTimer, 0, func() { fired <- "second" })
	if got := <-fired; got != "second" {
		t.Fatalf("%s timer fired", got)
	}
	s.Schedule(ReadmitTimer, time.Hour, func() { fired <- "readmit" })
	if !s.Scheduled(ReadmitTimer) || s.Scheduled(HalfOpenTimer) {
		t.Error("Scheduled does not say which timer is armed")
	}
	s.Retire()
	if s.Scheduled(ReadmitTimer) {
		t.Error("a retired state keeps its timer")
	}
	if s.Schedule(ReadmitTimer, 0, func() { fired <- "after retire" }) {
		t.Error("a retired state armed a timer")
	}
	select {
	case got := <-fired:
		t.Errorf("%s timer fired", got)
	default:
	}
}

func TestPoolFollowsTransitionsUntilClosed(t *testing.T) {
	reg := NewRegistry()
	a := &Server{Name: "a", State: reg.State("a")}
	old, cur := NewPool("u", []*Server{a}), NewPool("u", []*Server{{Name: "a", State: reg.State("a")}})
	old.Close()
	a.SetCircuit(CircuitClosed, CircuitOpen, "test", time.Now())
	if len(cur.Available()) != 0 {
		t.Error("a transition made through another pool's server left this pool's snapshot stale")
	}
	if len(old.Available()) != 1 {
		t.Error("a closed pool was refreshed")
	}
}

func TestRecordCheckRuns(t *testing.T) {
	s := NewRegistry().State("k")
	var got []int
	for _, ok := range []bool{true, true, false, false, false, true} {
		got = append(got, s.RecordCheck(Check{OK: ok}))
	}
	if want := []int{1, 2, 1, 2, 3, 1}; !slices.Equal(got, want) {
		t.Errorf("runs %v, want %v", got, want)
	}
}
