package ratelimit

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// DefaultMaxKeys is the number of keys a Memory limiter tracks at most unless
// WithMaxKeys says otherwise. At roughly 100 bytes per key (an IPv6 address,
// its map slot and the map's spare capacity) that is about 100 MiB in the
// worst case, reached only when that many distinct clients are active within
// one burst window.
const DefaultMaxKeys = 1 << 20

const (
	maxShards = 256 // enough that a mutex is rarely contended on any core count we run on
	// minPerShard keeps shards from getting so small that eviction hits
	// active keys while other shards have room.
	minPerShard = 64
	// sweepOnInsert is how many entries an insert looks at, dropping the
	// rested ones. Each new key thus clears up to this many stale ones, so
	// the map tracks the active set instead of every client ever seen.
	sweepOnInsert = 4
	// evictSample is how many entries an insert into a full shard looks at.
	evictSample = 16
	// cacheLine pads shards apart so two cores locking neighbouring shards
	// do not bounce one cache line between them.
	cacheLine = 64
)

// Memory is a Limiter that keeps state in this process. It is split into
// shards, each with its own mutex, so parallel requests for different keys
// rarely wait for each other. A decision for a key already present allocates
// nothing.
//
// A key whose TAT is in the past is fully rested and carries no information,
// so it may be dropped at any time: inserts sweep a few entries as they go,
// and Sweep clears them all. When a shard is full even so, an insert evicts
// the entry closest to resting among a small sample. Forgetting a key can
// only ever favour its client (it starts again with a full burst); it never
// denies anyone a request their own history would allow. That is the price
// of bounding memory against a flood of distinct keys.
//
// Use NewMemory; the zero value is not usable.
type Memory struct {
	g           gcra
	epoch       time.Time // origin of the TATs; see NewMemory
	seed        maphash.Seed
	shards      []shard
	mask        uint64
	maxPerShard int
}

type shard struct {
	mu  sync.Mutex       // guards tat
	tat map[string]int64 // key → TAT in ns since Memory.epoch; nil until the first insert
	_   [cacheLine - 16]byte
}

// MemoryOption configures NewMemory.
type MemoryOption func(*memoryConfig)

type memoryConfig struct {
	maxKeys int
}

// WithMaxKeys caps how many keys the limiter tracks; n <= 0 means
// DefaultMaxKeys. The cap is split evenly across shards and rounded down
// to a whole number per shard, so Len never exceeds it.
func WithMaxKeys(n int) MemoryOption {
	return func(c *memoryConfig) { c.maxKeys = n }
}

// NewMemory returns a Memory limiter that lets each key make burst requests
// at once and then rate requests per second. It returns an error wrapping
// ErrInvalidLimit when rate is not positive and finite, burst is below 1,
// or burst/rate exceeds a century.
//
// The one wall-clock read here fixes an origin for the stored TATs: when
// callers pass time.Now() as now, differences from it use the monotonic
// clock, so a step of the system clock cannot lock clients out. Decisions
// depend only on the now values passed to Allow.
func NewMemory(rate float64, burst int, opts ...MemoryOption) (*Memory, error) {
	g, err := newGCRA(rate, burst, time.Nanosecond)
	if err != nil {
		return nil, err
	}
	var cfg memoryConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxKeys <= 0 {
		cfg.maxKeys = DefaultMaxKeys
	}
	n := maxShards
	for n > 1 && cfg.maxKeys/n < minPerShard {
		n /= 2
	}
	return &Memory{
		g:           g,
		epoch:       time.Now(),
		seed:        maphash.MakeSeed(),
		shards:      make([]shard, n),
		mask:        uint64(n - 1),
		maxPerShard: max(cfg.maxKeys/n, 1),
	}, nil
}

var _ Limiter = (*Memory)(nil)

// Allow records one request for key at now and reports the decision. ctx is
// not used; it is there to satisfy Limiter.
func (m *Memory) Allow(_ context.Context, key string, now time.Time) Decision {
	t := int64(now.Sub(m.epoch))
	s := &m.shards[maphash.String(m.seed, key)&m.mask]

	s.mu.Lock()
	tat, found := s.tat[key]
	if !found {
		tat = t // rested: 0 would be a time like any other, as t may be negative
	}
	allowed, offset, next := m.g.decide(tat, t)
	if allowed {
		if found {
			s.tat[key] = next
		} else {
			s.insert(key, next, t, m.maxPerShard)
		}
	}
	s.mu.Unlock()

	return m.g.decision(allowed, offset)
}

// insert adds a key not yet in the shard. The caller holds s.mu.
func (s *shard) insert(key string, tat, now int64, maxLen int) {
	if s.tat == nil {
		s.tat = make(map[string]int64)
	}
	if len(s.tat) < maxLen {
		s.sweep(now, sweepOnInsert)
	} else {
		s.evict(now)
	}
	// Clone so the map does not pin a larger string the key was cut from,
	// such as a whole X-Forwarded-For header.
	s.tat[strings.Clone(key)] = tat
}

// sweep drops rested entries among the next n the map yields (Go starts each
// range at a random position) and reports how many it dropped. n < 0 means
// all. The caller holds s.mu.
func (s *shard) sweep(now int64, n int) int {
	dropped := 0
	for k, tat := range s.tat {
		if n == 0 {
			break
		}
		n--
		if tat <= now {
			delete(s.tat, k)
			dropped++
		}
	}
	return dropped
}

// evict makes room in a full shard: it drops the rested entries in a sample,
// or if there are none, the sampled entry whose TAT is earliest, i.e. the
// one that would rest soonest and so loses the least by being forgotten.
// The caller holds s.mu.
func (s *shard) evict(now int64) {
	var victim string
	var earliest int64
	n, dropped := 0, 0
	for k, tat := range s.tat {
		if n == evictSample {
			break
		}
		if tat <= now {
			delete(s.tat, k)
			dropped++
		} else if n == 0 || tat < earliest {
			victim, earliest = k, tat
		}
		n++
	}
	if dropped == 0 && n > 0 {
		delete(s.tat, victim)
	}
}

// Sweep drops every rested key as of now and reports how many it dropped.
// Inserts already sweep as they go, so calling it is optional; an owner that
// wants the memory of a quiet limiter back sooner can call it from a ticker.
func (m *Memory) Sweep(now time.Time) int {
	t := int64(now.Sub(m.epoch))
	dropped := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		dropped += s.sweep(t, -1)
		s.mu.Unlock()
	}
	return dropped
}

// Len reports how many keys the limiter currently tracks.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}
