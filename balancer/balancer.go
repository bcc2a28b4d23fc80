// Package balancer chooses a server for each request. A strategy is a
// Policy; strategies register under a name so a custom build can add its
// own without touching the core.
package balancer

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

// Policy picks one server among the available ones. servers is an
// immutable snapshot and is never empty; Pick must not modify it, must be
// safe for concurrent use, and should not allocate. It returns nil only
// when no server suits the request.
type Policy interface {
	Pick(servers []*upstream.Server, r *http.Request) *upstream.Server
}

// Options carries what a strategy may need from the config.
type Options struct {
	// HashKey is consistent_hash's key: ip, uri, header:NAME or cookie:NAME.
	HashKey string
	// BoundedLoad is consistent_hash's ε; 0 means DefaultBoundedLoad.
	BoundedLoad float64
	// Rand returns a uniformly random uint64; nil means math/rand/v2. Tests
	// inject a seeded source to make random strategies deterministic. It
	// must be safe for concurrent use.
	Rand func() uint64
	// Now returns the current time, for slow start and latency decay; nil
	// means time.Now. Tests inject a fake clock.
	Now func() time.Time
	// Settings is a custom strategy's load_balancing.options block,
	// decoded into the type it registered (server.RegisterStrategyOptions);
	// nil when it has none.
	Settings any
}

// Factory builds a Policy from options.
type Factory func(Options) (Policy, error)

var (
	// mu guards registry.
	mu       sync.RWMutex
	registry = map[string]Factory{}
)

// Register makes a strategy available under name. It panics on a duplicate
// name, since that is a programming error found at start-up.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic("balancer: duplicate strategy " + name)
	}
	registry[name] = f
}

// New builds the strategy registered under name.
func New(name string, opts Options) (Policy, error) {
	mu.RLock()
	f, ok := registry[name]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("balancer: unknown strategy %q", name)
	}
	if opts.Rand == nil {
		opts.Rand = rand.Uint64
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return f(opts)
}

// Names lists the registered strategies, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
