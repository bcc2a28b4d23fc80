package upstream

import (
	"sync"
	"sync/atomic"
	"time"
)

// Pool is the set of servers of one upstream. Balancers pick from
// Available, an immutable snapshot rebuilt only when a server's state
// changes, so the request path takes no lock and allocates nothing.
type Pool struct {
	// Name is the upstream's name from the config.
	Name string
	// Servers lists every configured server in config order.
	Servers []*Server

	avail atomic.Pointer[[]*Server]
	// mu serialises Refresh so snapshots are built one at a time.
	mu sync.Mutex
}

// NewPool returns a pool over servers with its first snapshot built.
// Until Close, every transition of a server's State rebuilds the snapshot,
// whoever makes it.
func NewPool(name string, servers []*Server) *Pool {
	p := &Pool{Name: name, Servers: servers}
	for _, s := range servers {
		s.join(p)
	}
	p.Refresh(time.Now())
	return p
}

// Close stops the servers' transitions from rebuilding the pool's
// snapshot, so a pool no one picks from any more can be collected. The
// snapshot stays as it was for requests that still hold the pool.
func (p *Pool) Close() {
	for _, s := range p.Servers {
		s.leave(p)
	}
}

// Available returns the servers that may take new requests: the usable
// primaries, or when none is usable, the usable backups. The slice must not
// be modified.
func (p *Pool) Available() []*Server { return *p.avail.Load() }

// Refresh rebuilds the Available snapshot from the servers' states. Call it
// after any state transition.
func (p *Pool) Refresh(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var primary, backup []*Server
	for _, s := range p.Servers {
		if !s.Usable(now) {
			continue
		}
		if s.Backup {
			backup = append(backup, s)
		} else {
			primary = append(primary, s)
		}
	}
	next := primary
	if len(next) == 0 {
		next = backup
	}
	if next == nil {
		next = []*Server{}
	}
	p.avail.Store(&next)
}

// Registry keeps server states by key across reloads, so a server present
// in the old and new config keeps its health and counters.
type Registry struct {
	// mu guards states.
	mu     sync.Mutex
	states map[string]*State
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{states: make(map[string]*State)}
}

// State returns the state kept under key, creating it on first use.
func (r *Registry) State(key string) *State {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.states[key]
	if !ok {
		s = newState(key)
		r.states[key] = s
	}
	return s
}

// Known reports whether a state is kept under key: whether the server
// was in the pool before.
func (r *Registry) Known(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.states[key]
	return ok
}

// Retain forgets every state whose key is not in keep and retires it, so
// its timers stop. Call it once a new runtime is in place, so removed
// servers do not linger.
func (r *Registry) Retain(keep map[string]bool) {
	r.mu.Lock()
	var gone []*State
	for k, s := range r.states {
		if !keep[k] {
			delete(r.states, k)
			gone = append(gone, s)
		}
	}
	r.mu.Unlock()
	for _, s := range gone {
		s.Retire()
	}
}

// Close retires every state: no timer of theirs fires after it returns.
func (r *Registry) Close() {
	r.mu.Lock()
	all := make([]*State, 0, len(r.states))
	for _, s := range r.states {
		all = append(all, s)
	}
	r.mu.Unlock()
	for _, s := range all {
		s.Retire()
	}
}

// Key is the registry key of a server of an upstream: state is per upstream
// because two upstreams may check the same address differently.
func Key(upstream, serverURL string) string { return upstream + "|" + serverURL }
