package balancer

import (
	"math"
	"net/http"

	"github.com/tbsphathuynh/proxy/upstream"
)

func init() {
	Register("ip_hash", func(Options) (Policy, error) { return &IPHash{}, nil })
}

// IPHash sends every request of a client IP to the same server, for
// applications that keep session state in the server's memory. The port is
// ignored so all of a client's connections stick together.
//
// It uses weighted rendezvous hashing (highest random weight): each server
// scores hash(client, server) and the best score wins. When a server leaves
// the pool only its own clients move, and they spread over the others;
// nginx's modulo scheme instead reshuffles many clients. Scoring is O(n)
// per pick, which for a pool of tens of servers is cheaper than a ring
// lookup. The zero value is ready to use.
type IPHash struct {
	seeds snapshotCache[rendezvous]
}

// rendezvous is the per-snapshot part of the score: a hash per server and,
// when weights differ, the weights.
type rendezvous struct {
	seeds   []uint64
	weights []float64 // nil when all weights are equal
}

// Pick implements Policy.
func (p *IPHash) Pick(servers []*upstream.Server, r *http.Request) *upstream.Server {
	rv := p.seeds.get(servers, buildRendezvous)
	key := mix(hashString(fnvOffset, clientHost(r.RemoteAddr)))
	best := 0
	if rv.weights == nil {
		var top uint64
		for i, seed := range rv.seeds {
			if x := mix(key ^ seed); x >= top {
				best, top = i, x
			}
		}
		return servers[best]
	}
	top := -1.0
	for i, seed := range rv.seeds {
		// Weighted HRW (Schindelhauer & Schomaker): w / -ln(u) with u
		// uniform in (0,1) makes server i win with probability w_i / Σw,
		// and still moves only the leaving server's keys.
		u := (float64(mix(key^seed)>>11) + 0.5) / (1 << 53)
		if score := rv.weights[i] / -math.Log(u); score > top {
			best, top = i, score
		}
	}
	return servers[best]
}

func buildRendezvous(servers []*upstream.Server) rendezvous {
	rv := rendezvous{seeds: make([]uint64, len(servers))}
	equal := true
	for i, s := range servers {
		rv.seeds[i] = mix(hashString(fnvOffset, serverID(s)))
		equal = equal && s.Weight == servers[0].Weight
	}
	if !equal {
		rv.weights = make([]float64, len(servers))
		for i, s := range servers {
			rv.weights[i] = float64(max(s.Weight, 1))
		}
	}
	return rv
}

// serverID names a server for hashing: its URL, which is the same on every
// proxy instance, so they all agree on where a key goes.
func serverID(s *upstream.Server) string {
	if s.URL != nil {
		return s.URL.String()
	}
	return s.Name
}
