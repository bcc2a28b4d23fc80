package balancer

import (
	"net/http"
	"sync/atomic"

	"github.com/tbsphathuynh/proxy/upstream"
)

func init() {
	Register("round_robin", func(Options) (Policy, error) { return &RoundRobin{}, nil })
}

// RoundRobin sends each request to the next server in turn, ignoring
// weights.
type RoundRobin struct {
	next atomic.Uint64
}

// Pick implements Policy.
func (p *RoundRobin) Pick(servers []*upstream.Server, _ *http.Request) *upstream.Server {
	n := p.next.Add(1) - 1
	return servers[n%uint64(len(servers))]
}
