package balancer

import (
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

// This file holds what several strategies share: hashing, random numbers,
// effective weights and the per-snapshot cache.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hashString folds s into the FNV-1a hash h. FNV is stable across
// processes and versions, unlike hash/maphash, so every proxy instance
// sends a client to the same server; it walks the string in place and
// allocates nothing.
func hashString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// mix is the splitmix64 finaliser. FNV's low bits are weak on short,
// similar inputs such as IP addresses; mixing spreads them over the ring.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// next steps a splitmix64 generator: a cheap way to draw several numbers
// from one call to the injected Rand, which may be a locked source.
func next(x uint64) uint64 { return mix(x + 0x9e3779b97f4a7c15) }

// unit maps x to [0, 1) using its top 53 bits.
func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

// clientHost returns the host part of a RemoteAddr ("1.2.3.4:5678",
// "[::1]:5678", or a bare address) as a substring, without the allocation
// of net.SplitHostPort's error path or a netip parse.
func clientHost(addr string) string {
	if strings.HasPrefix(addr, "[") {
		if i := strings.IndexByte(addr, ']'); i > 0 {
			return addr[1:i]
		}
		return addr
	}
	i := strings.IndexByte(addr, ':')
	if i < 0 || strings.IndexByte(addr[i+1:], ':') >= 0 {
		// No port, or a bare IPv6 address whose colons are not a port.
		return addr
	}
	return addr[:i]
}

// clock is a lazily read time source: strategies look at the time only when
// a server is ramping, so steady-state picks never call time.Now.
type clock struct {
	now func() time.Time
	t   time.Time
	set bool
}

func (c *clock) get() time.Time {
	if !c.set {
		if c.now == nil {
			c.t = time.Now()
		} else {
			c.t = c.now()
		}
		c.set = true
	}
	return c.t
}

// weight is s's effective weight: its configured weight scaled by its
// slow-start ramp.
func weight(s *upstream.Server, c *clock) float64 {
	w := float64(max(s.Weight, 1))
	if s.Ramping() {
		w *= s.Ramp(c.get())
	}
	return w
}

// randOf returns f, or the global source when f is nil, so the zero value
// of each strategy works.
func randOf(f func() uint64) func() uint64 {
	if f == nil {
		return rand.Uint64
	}
	return f
}

// admitRamping is slow start for the strategies that follow a fixed order
// (round robin, weighted round robin), whose schedule cannot ramp: starting
// at servers[i], a ramping server is taken with probability Ramp and
// otherwise skipped for the next one. Its share thus grows from MinRamp to
// full over SlowStart, the skipped turns going to its neighbours.
func admitRamping(servers []*upstream.Server, i int, rnd func() uint64, now func() time.Time) *upstream.Server {
	n := len(servers)
	for k := range n {
		s := servers[(i+k)%n]
		if !s.Ramping() {
			return s
		}
		c := clock{now: now}
		if unit(randOf(rnd)()) < s.Ramp(c.get()) {
			return s
		}
	}
	return servers[i]
}

// snapshotCache keeps one value derived from a pool snapshot (a schedule,
// a ring) and rebuilds it when the snapshot changes. Snapshots change only
// on health transitions, so the build cost is paid rarely and picks read
// the value through one atomic load.
type snapshotCache[T any] struct {
	p atomic.Pointer[cached[T]]
}

type cached[T any] struct {
	servers []*upstream.Server
	v       T
}

// get returns the value for servers, building it with build on a miss.
// Concurrent misses may build twice; the last one wins, which is harmless.
func (c *snapshotCache[T]) get(servers []*upstream.Server, build func([]*upstream.Server) T) T {
	e := c.p.Load()
	if e == nil || !sameSnapshot(e.servers, servers) {
		e = &cached[T]{servers: servers, v: build(servers)}
		c.p.Store(e)
	}
	return e.v
}
