package upstream

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

func testPool(backups ...bool) *Pool {
	reg := NewRegistry()
	servers := make([]*Server, len(backups))
	for i, b := range backups {
		u := &url.URL{Scheme: "http", Host: fmt.Sprintf("10.0.0.%d", i+1)}
		servers[i] = &Server{Name: string(rune('a' + i)), URL: u, Weight: 1, Backup: b, State: reg.State(Key("t", u.String()))}
	}
	return NewPool("t", servers)
}

func avail(p *Pool) string {
	var b strings.Builder
	for _, s := range p.Available() {
		b.WriteString(s.Name)
	}
	return b.String()
}

func TestBackupOnlyWhenNoPrimary(t *testing.T) {
	p := testPool(false, false, true, true) // a b primaries, c d backups
	now := time.Now()
	steps := []struct {
		name string
		do   func()
		want string
	}{
		{"all up", func() {}, "ab"},
		{"a down", func() { p.Servers[0].SetHealthy(false, "t", now) }, "b"},
		{"b ejected", func() { p.Servers[1].EjectAt(now, now.Add(time.Minute), "t") }, "cd"},
		{"backup c drained", func() { p.Servers[2].SetDrained(true) }, "d"},
		{"a back", func() { p.Servers[0].SetHealthy(true, "t", now) }, "a"},
		{"everything out", func() {
			p.Servers[0].SetHealthy(false, "t", now)
			p.Servers[3].SetHealthy(false, "t", now)
		}, ""},
	}
	for _, s := range steps {
		s.do()
		p.Refresh(now)
		if got := avail(p); got != s.want {
			t.Errorf("%s: available %q, want %q", s.name, got, s.want)
		}
	}
}

func TestSetHealthyReportsTransitions(t *testing.T) {
	s := NewRegistry().State("k")
	now := time.Now()
	tests := []struct {
		healthy bool
		changed bool
	}{{true, false}, {false, true}, {false, false}, {true, true}, {true, false}}
	for i, tt := range tests {
		if got := s.SetHealthy(tt.healthy, fmt.Sprint("step ", i), now); got != tt.changed {
			t.Errorf("step %d: SetHealthy(%v) = %v, want %v", i, tt.healthy, got, tt.changed)
		}
	}
	if st := s.Status(); !st.Healthy || st.Reason != "step 3" {
		t.Errorf("status %+v: the reason must be the transition's", st)
	}
}

func TestRegistryKeepsState(t *testing.T) {
	reg := NewRegistry()
	a := reg.State("a")
	a.SetHealthy(false, "down", time.Now())
	if reg.State("a") != a {
		t.Fatal("state not kept")
	}
	reg.Retain(map[string]bool{"b": true})
	if reg.State("a") == a {
		t.Error("Retain kept a removed server's state")
	}
}

func TestSnapshot(t *testing.T) {
	p := testPool(false, true)
	a, b := p.Servers[0], p.Servers[1]
	t0 := time.Unix(1_700_000_000, 0)
	a.Acquire()
	a.Acquire()
	a.Release()
	a.ObserveLatencyAt(20*time.Millisecond, t0)
	a.RecordCheck(Check{At: t0, OK: true, Result: "status 200", Latency: time.Millisecond})
	b.EjectAt(t0, t0.Add(time.Minute), "ejected: 5 consecutive failures")
	p.Refresh(t0)

	got := p.Snapshot(t0.Add(time.Second))
	if len(got) != 2 {
		t.Fatalf("%d servers", len(got))
	}
	sa, sb := got[0], got[1]
	if sa.Name != "a" || sa.URL != "http://10.0.0.1" || !sa.Healthy || !sa.Usable ||
		sa.InFlight != 1 || sa.Requests != 2 || sa.LatencyEWMA != 20*time.Millisecond ||
		sa.LastCheck.Result != "status 200" || sa.Ramp != 1 {
		t.Errorf("a: %+v", sa)
	}
	if !sb.Backup || sb.Usable || sb.Reason != "ejected: 5 consecutive failures" || !sb.Since.Equal(t0) ||
		sb.Ejections != 1 || !sb.EjectedUntil.Equal(t0.Add(time.Minute)) {
		t.Errorf("b: %+v", sb)
	}
	if got := p.Snapshot(t0.Add(2 * time.Minute))[1]; !got.Usable || !got.EjectedUntil.IsZero() {
		t.Errorf("b after its ejection: %+v", got)
	}
}
