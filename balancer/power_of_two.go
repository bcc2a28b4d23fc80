package balancer

import (
	"net/http"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

func init() {
	Register("power_of_two", func(o Options) (Policy, error) {
		return &PowerOfTwo{rand: o.Rand, now: o.Now}, nil
	})
}

// PowerOfTwo draws two distinct servers at random and sends the request to
// the one with fewer in-flight requests per unit of effective weight
// (Mitzenmacher's "power of two choices"). It reads two servers instead of
// all, and, unlike least connections, several proxies using it do not all
// rush to the same idle server at once. The zero value is ready to use.
type PowerOfTwo struct {
	rand func() uint64
	now  func() time.Time
}

// Pick implements Policy.
func (p *PowerOfTwo) Pick(servers []*upstream.Server, _ *http.Request) *upstream.Server {
	n := len(servers)
	if n == 1 {
		return servers[0]
	}
	x := randOf(p.rand)()
	a, b := two(x, n)
	sa, sb := servers[a], servers[b]
	c := clock{now: p.now}
	wa, wb := weight(sa, &c), weight(sb, &c)
	return choose(sa, sb, float64(sa.InFlight())/wa, float64(sb.InFlight())/wb, wa, wb, x)
}

// choose returns the server of lower load; on a tie, as between idle
// servers, it draws one in proportion to effective weight, so weights and
// slow start hold even when there is no load to compare.
func choose(sa, sb *upstream.Server, la, lb, wa, wb float64, x uint64) *upstream.Server {
	switch {
	case la < lb:
		return sa
	case lb < la:
		return sb
	case unit(next(next(x)))*(wa+wb) < wa:
		return sa
	}
	return sb
}

// two derives two distinct indexes below n (n ≥ 2) from one random number.
func two(x uint64, n int) (int, int) {
	a := int(x % uint64(n))
	b := int(next(x) % uint64(n-1))
	if b >= a {
		b++
	}
	return a, b
}
