package balancer

import (
	"net/http"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

func init() {
	Register("random", func(o Options) (Policy, error) {
		return &Random{rand: o.Rand, now: o.Now}, nil
	})
}

// Random picks a server at random in proportion to its effective weight
// (weight × slow-start ramp). It keeps no shared state, so it scales
// perfectly across cores, and several proxies in front of the same servers
// need not coordinate. The zero value is ready to use.
type Random struct {
	rand func() uint64
	now  func() time.Time
}

// Pick implements Policy.
func (p *Random) Pick(servers []*upstream.Server, _ *http.Request) *upstream.Server {
	c := clock{now: p.now}
	total := 0.0
	for _, s := range servers {
		total += weight(s, &c)
	}
	target := unit(randOf(p.rand)()) * total
	for _, s := range servers {
		target -= weight(s, &c)
		if target < 0 {
			return s
		}
	}
	// Rounding can leave target at a hair above zero after the last server.
	return servers[len(servers)-1]
}
