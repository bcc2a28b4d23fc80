package balancer

import (
	"net/http"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

func init() {
	Register("least_latency", func(o Options) (Policy, error) {
		return &LeastLatency{rand: o.Rand, now: o.Now}, nil
	})
}

// LeastLatency prefers the server expected to answer first: it draws two
// servers at random and takes the one with the lower
// latency × (in-flight + 1) / effective weight, the latency being the
// server's peak EWMA of response time (upstream.State.LatencyCost). This is
// Finagle's and linkerd's "P2C + peak EWMA".
//
// Why it does not starve a server, as a plain "lowest average wins" does:
// the cost of a server without fresh samples decays toward zero, so a
// server shunned for being slow looks cheaper over time until it is tried
// again, and its new, fast samples replace the old average. The two random
// choices also spread load among servers of similar cost instead of
// herding onto one.
//
// The forwarder feeds the EWMA through upstream.State.ObserveLatency. The
// zero value is ready to use.
type LeastLatency struct {
	rand func() uint64
	now  func() time.Time
}

// unmeasuredPenalty is the cost of a server with requests in flight but no
// latency sample yet: without it a new server would cost 0 and take every
// request until its first answer (Finagle uses the same guard).
const unmeasuredPenalty = float64(time.Minute)

// Pick implements Policy.
func (p *LeastLatency) Pick(servers []*upstream.Server, _ *http.Request) *upstream.Server {
	n := len(servers)
	if n == 1 {
		return servers[0]
	}
	x := randOf(p.rand)()
	a, b := two(x, n)
	sa, sb := servers[a], servers[b]
	c := clock{now: p.now}
	now := c.get()
	wa, wb := weight(sa, &c), weight(sb, &c)
	return choose(sa, sb, latencyScore(sa, now)/wa, latencyScore(sb, now)/wb, wa, wb, x)
}

// latencyScore is the expected wait at s: its decayed latency EWMA times
// the requests that will be ahead of this one.
func latencyScore(s *upstream.Server, now time.Time) float64 {
	inFlight := float64(s.InFlight())
	cost := s.LatencyCost(now)
	if cost == 0 && inFlight > 0 {
		return unmeasuredPenalty + inFlight
	}
	return cost * (inFlight + 1)
}
