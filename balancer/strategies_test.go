package balancer

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

func TestRegistered(t *testing.T) {
	want := []string{"consistent_hash", "ip_hash", "least_connections", "least_latency",
		"power_of_two", "random", "round_robin", "weighted_round_robin"}
	for _, name := range want {
		if !slices.Contains(Names(), name) {
			t.Errorf("strategy %q not registered; have %v", name, Names())
		}
	}
	if _, err := New("nope", Options{}); err == nil {
		t.Error("New(nope) succeeded")
	}
}

func TestRoundRobinEven(t *testing.T) {
	for _, n := range []int{2, 3, 4, 7} {
		servers := fixture(make([]int, n)...)
		got := counts(mustNew(t, "round_robin", Options{}), servers, request(""), 10_000)
		for _, s := range servers {
			if !within(got[s.Name], 10_000/n, 0.02) {
				t.Errorf("%d servers: %s got %d picks, want %d ±2%%", n, s.Name, got[s.Name], 10_000/n)
			}
		}
	}
}

func TestWeightedRoundRobin(t *testing.T) {
	servers := fixture(3, 1)
	p := mustNew(t, "weighted_round_robin", Options{})
	var seq strings.Builder
	for range 4000 {
		seq.WriteString(p.Pick(servers, nil).Name)
	}
	s := seq.String()
	if a, b := strings.Count(s, "a"), strings.Count(s, "b"); a != 3000 || b != 1000 {
		t.Errorf("weights 3:1 gave a=%d b=%d, want 3000 and 1000", a, b)
	}
	// Smooth: every window of one cycle holds exactly one b, so a never
	// runs more than three in a row and b never twice in a row.
	for i := 0; i+4 <= len(s); i++ {
		if strings.Count(s[i:i+4], "b") != 1 {
			t.Fatalf("window %d %q is not smooth", i, s[i:i+4])
		}
	}
}

func TestLeastConnectionsFavoursFast(t *testing.T) {
	// a answers in 1 tick, b in 10: requests pile up on b, so least
	// connections should send most new work to a.
	servers := fixture(1, 1)
	p := mustNew(t, "least_connections", Options{Rand: seeded(1)})
	type job struct {
		s    *upstream.Server
		done int
	}
	var running []job
	picks := map[string]int{}
	for tick := range 10_000 {
		running = slices.DeleteFunc(running, func(j job) bool {
			if j.done <= tick {
				j.s.Release()
				return true
			}
			return false
		})
		for range 2 { // two arrivals per tick keep both servers busy
			s := p.Pick(servers, nil)
			s.Acquire()
			picks[s.Name]++
			d := 1
			if s.Name == "b" {
				d = 10
			}
			running = append(running, job{s, tick + d})
		}
	}
	if picks["a"] < 4*picks["b"] {
		t.Errorf("fast a got %d picks, slow b %d: want a ≥ 4× b", picks["a"], picks["b"])
	}
}

func TestLeastConnectionsWeights(t *testing.T) {
	servers := fixture(2, 1)
	p := mustNew(t, "least_connections", Options{Rand: seeded(2)})
	// a: 3 in flight / weight 2 = 1.5 beats b: 2 / 1.
	acquire(servers[0], 3)
	acquire(servers[1], 2)
	if got := p.Pick(servers, nil); got != servers[0] {
		t.Errorf("picked %s, want a (1.5 per weight vs 2)", got.Name)
	}
	// Idle ties share in proportion to weight.
	idle := fixture(3, 1)
	got := counts(p, idle, nil, 40_000)
	if !within(got["a"], 30_000, 0.03) || !within(got["b"], 10_000, 0.05) {
		t.Errorf("idle weights 3:1 gave %v", got)
	}
}

func acquire(s *upstream.Server, n int) {
	for range n {
		s.Acquire()
	}
}

func TestRandomWeighted(t *testing.T) {
	servers := fixture(3, 1)
	got := counts(mustNew(t, "random", Options{Rand: seeded(3)}), servers, nil, 40_000)
	if !within(got["a"], 30_000, 0.03) || !within(got["b"], 10_000, 0.05) {
		t.Errorf("weights 3:1 gave %v", got)
	}
}

func TestPowerOfTwoPicksLessLoaded(t *testing.T) {
	servers := fixture(1, 1, 1, 1, 1)
	for i, s := range servers {
		acquire(s, 2*i+1) // a=1 b=3 c=5 d=7 e=9
	}
	rnd := seeded(4)
	for range 1000 {
		x := rnd()
		a, b := two(x, len(servers))
		if a == b {
			t.Fatalf("two(%d) drew %d twice", x, a)
		}
		want := servers[min(a, b)] // lower index = fewer in flight
		got := mustNew(t, "power_of_two", Options{Rand: func() uint64 { return x }}).Pick(servers, nil)
		if got != want {
			t.Fatalf("choices %s,%s: picked %s, want %s", servers[a].Name, servers[b].Name, got.Name, want.Name)
		}
	}
}

func TestLeastLatencyRecovers(t *testing.T) {
	clk := newFakeClock()
	servers := fixture(1, 1)
	a, b := servers[0], servers[1]
	p := mustNew(t, "least_latency", Options{Rand: seeded(5), Now: clk.Now})
	latency := map[*upstream.Server]time.Duration{a: 10 * time.Millisecond, b: 500 * time.Millisecond}
	// run sends n requests, one every 10ms, each answered at its server's
	// latency, and returns the share b got.
	run := func(n int) float64 {
		toB := 0
		for range n {
			s := p.Pick(servers, nil)
			if s == b {
				toB++
			}
			s.ObserveLatencyAt(latency[s], clk.Now())
			clk.Add(10 * time.Millisecond)
		}
		return float64(toB) / float64(n)
	}
	run(100) // warm up both EWMAs
	if share := run(1000); share > 0.05 {
		t.Fatalf("slow b got %.0f%% of requests, want ≤ 5%%", share*100)
	}
	latency[b] = 10 * time.Millisecond // b recovers
	// b's cost decays while it gets no samples until it is tried again;
	// then its fast samples replace the slow average.
	run(10_000)
	if share := run(2000); share < 0.35 {
		t.Errorf("recovered b got %.0f%% of requests, want ≥ 35%%", share*100)
	}
}

func TestSlowStartRamps(t *testing.T) {
	for _, name := range []string{"round_robin", "weighted_round_robin", "least_connections", "random", "power_of_two"} {
		t.Run(name, func(t *testing.T) {
			clk := newFakeClock()
			servers := fixture(1, 1)
			b := servers[1]
			b.SlowStart = 10 * time.Second
			b.SetHealthy(false, "test", clk.Now())
			b.SetHealthy(true, "test", clk.Now()) // b returns now
			p := mustNew(t, name, Options{Rand: seeded(6), Now: clk.Now})
			var shares []float64
			for range 3 {
				shares = append(shares, float64(counts(p, servers, nil, 20_000)["b"])/20_000)
				clk.Add(5 * time.Second)
			}
			// Ramp 0.1, 0.55, 1: b's share grows and ends at half.
			if shares[0] > 0.12 || shares[1] <= shares[0]+0.1 || !within(int(shares[2]*1000), 500, 0.05) {
				t.Errorf("b's share over the ramp: %.3f", shares)
			}
			if b.Ramping() {
				t.Error("b still ramping after SlowStart")
			}
		})
	}
}

func TestRampZeroValue(t *testing.T) {
	s := fixture(1)[0]
	s.SlowStart = time.Minute
	if s.Ramping() || s.Ramp(time.Now()) != 1 {
		t.Error("a server healthy since start ramps")
	}
}
