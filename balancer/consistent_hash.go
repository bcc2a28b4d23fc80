package balancer

import (
	"cmp"
	"fmt"
	"math"
	"net/http"
	"slices"

	"github.com/tbsphathuynh/proxy/upstream"
)

// DefaultBoundedLoad is consistent_hash's ε when Options leaves it 0: no
// server takes more than 1.25× its share of the in-flight requests.
const DefaultBoundedLoad = 0.25

func init() {
	Register("consistent_hash", func(o Options) (Policy, error) { return NewConsistentHash(o.HashKey, o.BoundedLoad) })
}

// ConsistentHash maps a request key (client IP, a header, a cookie or the
// URI) onto a hash ring, so the same key keeps going to the same server and
// a change of the pool moves few keys: caches on the servers stay warm.
//
// Plain consistent hashing lets one hot key overload its server. This one
// bounds loads (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with
// Bounded Loads", 2018): a server takes a request only while its in-flight
// count stays within ⌈(1+ε) × its share of all in-flight requests⌉;
// otherwise the walk goes on clockwise to the next server with room. Keys
// thus stay put while loads are even and spill to ring neighbours only
// under skew.
type ConsistentHash struct {
	key     hashKey
	epsilon float64
	ring    snapshotCache[*ring]
}

// NewConsistentHash builds the strategy for a hash_key spec and ε
// (0 means DefaultBoundedLoad).
func NewConsistentHash(spec string, epsilon float64) (*ConsistentHash, error) {
	k, err := parseHashKey(spec)
	if err != nil {
		return nil, err
	}
	if epsilon < 0 || math.IsNaN(epsilon) || math.IsInf(epsilon, 0) {
		return nil, fmt.Errorf("balancer: bounded load %v: want a number ≥ 0", epsilon)
	}
	if epsilon == 0 {
		epsilon = DefaultBoundedLoad
	}
	return &ConsistentHash{key: k, epsilon: epsilon}, nil
}

// vnodesPerWeight is how many points a server of weight 1 gets on the ring;
// ketama's 160 keeps shares within a few percent of even.
const vnodesPerWeight = 160

// maxPoints bounds the ring of huge weighted pools.
const maxPoints = 1 << 16

// ring is the hash ring of one pool snapshot, built once per snapshot.
type ring struct {
	points  []uint64 // sorted point hashes
	owner   []uint32 // owner[i] is the index of the server of points[i]
	weights []float64
	total   float64 // Σ weights
}

func buildRing(servers []*upstream.Server) *ring {
	rg := &ring{weights: make([]float64, len(servers))}
	sum := 0
	for i, s := range servers {
		w := max(s.Weight, 1)
		rg.weights[i] = float64(w)
		rg.total += float64(w)
		sum += w
	}
	per := float64(vnodesPerWeight)
	if sum*vnodesPerWeight > maxPoints {
		per = float64(maxPoints) / float64(sum)
	}
	type point struct {
		h uint64
		o uint32
	}
	var pts []point
	for i, s := range servers {
		base := hashString(fnvOffset, serverID(s))
		n := max(1, int(rg.weights[i]*per))
		for v := range n {
			pts = append(pts, point{mix(base + uint64(v)*0x9e3779b97f4a7c15), uint32(i)})
		}
	}
	slices.SortFunc(pts, func(a, b point) int { return cmp.Compare(a.h, b.h) })
	rg.points = make([]uint64, len(pts))
	rg.owner = make([]uint32, len(pts))
	for i, p := range pts {
		rg.points[i], rg.owner[i] = p.h, p.o
	}
	return rg
}

// Pick implements Policy.
func (p *ConsistentHash) Pick(servers []*upstream.Server, r *http.Request) *upstream.Server {
	rg := p.ring.get(servers, buildRing)
	start, _ := slices.BinarySearch(rg.points, p.key.sum(r))
	var inFlight int64
	for _, s := range servers {
		inFlight += s.InFlight()
	}
	// The bound counts the request being placed, so an idle pool admits
	// it anywhere: ⌈(1+ε)(m+1)·w/W⌉ ≥ 1.
	share := (1 + p.epsilon) * float64(inFlight+1) / rg.total
	var seen uint64 // servers already found full, for pools of up to 64
	n := len(rg.points)
	for k := range n {
		i := rg.owner[(start+k)%n]
		if i < 64 && seen&(1<<i) != 0 {
			continue
		}
		s := servers[i]
		if float64(s.InFlight()+1) <= math.Ceil(share*rg.weights[i]) {
			return s
		}
		if i < 64 {
			seen |= 1 << i
		}
	}
	// Unreachable in theory: the bounds sum to more than the load, so some
	// server has room. In-flight counts move under us, though.
	return servers[rg.owner[start%n]]
}
