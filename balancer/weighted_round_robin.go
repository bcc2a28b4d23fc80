package balancer

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

func init() {
	Register("weighted_round_robin", func(o Options) (Policy, error) {
		return &WeightedRoundRobin{rand: o.Rand, now: o.Now}, nil
	})
}

// WeightedRoundRobin spreads requests in proportion to server weights and
// interleaves them smoothly, as nginx does: weights 5,1,1 give
// a a b a c a a, never five a in a row.
//
// nginx runs its smooth algorithm under a lock per pick. We instead compute
// the whole cycle once per pool snapshot (snapshots change only when health
// does) and walk it with an atomic counter, so a pick is lock-free and
// allocation-free.
//
// The cycle is fixed, so slow start is approximated as in RoundRobin: a
// ramping server is skipped with probability 1-Ramp. The zero value is
// ready to use.
type WeightedRoundRobin struct {
	next  atomic.Uint64
	sched atomic.Pointer[schedule]
	rand  func() uint64
	now   func() time.Time
}

type schedule struct {
	servers []*upstream.Server // the snapshot the cycle was built for
	order   []uint32           // indexes into servers, one full cycle
}

// maxCycle bounds the precomputed cycle; larger weight sums are scaled down
// by their common divisor first, then capped proportionally.
const maxCycle = 1 << 16

// Pick implements Policy.
func (p *WeightedRoundRobin) Pick(servers []*upstream.Server, _ *http.Request) *upstream.Server {
	s := p.sched.Load()
	if s == nil || !sameSnapshot(s.servers, servers) {
		s = buildSchedule(servers)
		p.sched.Store(s)
	}
	n := p.next.Add(1) - 1
	return admitRamping(servers, int(s.order[n%uint64(len(s.order))]), p.rand, p.now)
}

// sameSnapshot reports whether a and b are the same immutable snapshot.
func sameSnapshot(a, b []*upstream.Server) bool {
	return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0]
}

func buildSchedule(servers []*upstream.Server) *schedule {
	weights := make([]int, len(servers))
	g, sum := 0, 0
	for i, s := range servers {
		w := max(s.Weight, 1)
		weights[i] = w
		g = gcd(g, w)
	}
	for i := range weights {
		weights[i] /= g
		sum += weights[i]
	}
	if sum > maxCycle {
		for i := range weights {
			weights[i] = max(1, weights[i]*maxCycle/sum)
		}
		sum = 0
		for _, w := range weights {
			sum += w
		}
	}
	order := make([]uint32, 0, sum)
	current := make([]int, len(weights))
	for range sum {
		best := 0
		for i, w := range weights {
			current[i] += w
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= sum
		order = append(order, uint32(best))
	}
	return &schedule{servers: servers, order: order}
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
