package balancer

import (
	"net/http"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

func init() {
	Register("least_connections", func(o Options) (Policy, error) {
		return &LeastConnections{rand: o.Rand, now: o.Now}, nil
	})
}

// LeastConnections sends each request to the server with the fewest
// in-flight requests per unit of effective weight, so a slow server, whose
// requests pile up, gets less new work. Ties, as when the pool is idle, are
// broken at random in proportion to effective weight, so equal servers
// share and weights and slow start hold at low concurrency too (nginx
// breaks them with weighted round robin to the same effect). The zero value
// is ready to use.
type LeastConnections struct {
	rand func() uint64
	now  func() time.Time
}

// Pick implements Policy.
func (p *LeastConnections) Pick(servers []*upstream.Server, _ *http.Request) *upstream.Server {
	c := clock{now: p.now}
	x := randOf(p.rand)()
	var best *upstream.Server
	var bestLoad, tied float64
	for _, s := range servers {
		w := weight(s, &c)
		load := float64(s.InFlight()) / w
		switch {
		case best == nil || load < bestLoad:
			best, bestLoad, tied = s, load, w
		case load == bestLoad:
			// Weighted reservoir sampling over the tied servers: the k-th
			// replaces the choice with probability w_k / Σw, which leaves
			// each tied server chosen in proportion to its weight.
			tied += w
			x = next(x)
			if unit(x)*tied < w {
				best = s
			}
		}
	}
	return best
}
