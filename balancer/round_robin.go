package balancer

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

func init() {
	Register("round_robin", func(o Options) (Policy, error) {
		return &RoundRobin{rand: o.Rand, now: o.Now}, nil
	})
}

// RoundRobin sends each request to the next server in turn, ignoring
// weights. A server in its slow-start ramp is skipped with probability
// 1-Ramp, its turn going to the next server. The zero value is ready to
// use.
type RoundRobin struct {
	next atomic.Uint64
	rand func() uint64
	now  func() time.Time
}

// Pick implements Policy.
func (p *RoundRobin) Pick(servers []*upstream.Server, _ *http.Request) *upstream.Server {
	n := p.next.Add(1) - 1
	return admitRamping(servers, int(n%uint64(len(servers))), p.rand, p.now)
}
