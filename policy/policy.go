// Package policy builds a route's policies (headers, redirect, rewrite,
// ip_filter, basic_auth, cors, max_body, compress, forward_auth, sticky,
// mirror) from their config, and
// lets a custom build add its own: Register a name, the type its settings
// decode into and a builder, and `policies: [{NAME: {...}}]` works in a
// config file, with the same errors and positions as built-in keys.
//
// A policy is a middleware.Middleware built once per config; a reload
// builds new ones and swaps them in with the rest of the config. Policies
// run in the order a route lists them, before its rate limit.
package policy

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/middleware"
)

// Env is what a policy gets besides its settings.
type Env struct {
	// Route names the route, for logs.
	Route string
	// Log is the proxy's logger.
	Log *slog.Logger
	// Rejected counts a request the policy answered itself instead of
	// letting it through (proxy_policy_rejections_total{route,policy}).
	// It is never nil.
	Rejected func()
	// Dropped counts a request the mirror policy did not copy because as
	// many copies as it allows were still under way, or because copies
	// are paused after one failed (proxy_mirror_dropped_total{route}).
	// It is never nil.
	Dropped func()
	// Upstream returns the upstream of that name, as a round tripper that
	// picks one of its servers (with its balancing, health and retries),
	// or nil when there is none. The mirror policy sends its copies there.
	Upstream func(name string) http.RoundTripper
}

// Builder builds a policy's middleware from its settings: a pointer to a
// value of the type given to Register, decoded and validated. An error
// fails the config load or reload that asked for it.
type Builder func(settings any, env Env) (func(http.Handler) http.Handler, error)

var (
	mu       sync.RWMutex
	builders = map[string]Builder{}
)

// Register makes name a policy a route may list: its settings decode into
// a new value of settings' type (a pointer to a struct; a Validate() error
// method, if it has one, is called at load), and build makes its
// middleware. Call it before loading a config, typically from init in a
// custom build. It panics on a name taken, a programming error found at
// start-up.
func Register(name string, settings any, build Builder) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := builders[name]; dup {
		panic("policy: duplicate policy " + name)
	}
	config.RegisterPolicy(name, settings)
	builders[name] = build
}

// Build makes the middleware of one policy of a route.
func Build(p config.Policy, env Env) (middleware.Middleware, error) {
	if env.Rejected == nil {
		env.Rejected = func() {}
	}
	if env.Dropped == nil {
		env.Dropped = func() {}
	}
	if env.Log == nil {
		env.Log = slog.New(slog.DiscardHandler)
	}
	switch {
	case p.Headers != nil:
		return headers(p.Headers), nil
	case p.Redirect != nil:
		return redirect(p.Redirect), nil
	case p.Rewrite != nil:
		return rewrite(p.Rewrite)
	case p.IPFilter != nil:
		return ipFilter(p.IPFilter, env)
	case p.BasicAuth != nil:
		return basicAuth(p.BasicAuth, env), nil
	case p.CORS != nil:
		return cors(p.CORS, env), nil
	case p.MaxBody != nil:
		return maxBody(int64(*p.MaxBody), env), nil
	case p.Compress != nil:
		return compress(p.Compress), nil
	case p.ForwardAuth != nil:
		return forwardAuth(p.ForwardAuth, env), nil
	case p.Sticky != nil:
		return sticky(p.Sticky), nil
	case p.Mirror != nil:
		return mirror(p.Mirror, env)
	case p.Custom != nil:
		mu.RLock()
		build := builders[p.Custom.Name]
		mu.RUnlock()
		if build == nil {
			return nil, fmt.Errorf("policy %s is not registered", p.Custom.Name)
		}
		mw, err := build(p.Custom.Settings, env)
		if err != nil {
			return nil, err
		}
		return mw, nil
	}
	return nil, fmt.Errorf("empty policy")
}

// Chain builds a route's policies, in order; the first listed runs first.
// rejected, if not nil, gives each policy, by name, its Env.Rejected.
func Chain(list []config.Policy, env Env, rejected func(policy string) func()) (middleware.Middleware, error) {
	mws := make([]middleware.Middleware, 0, len(list))
	for i, p := range list {
		name := p.Name()
		e := env
		if rejected != nil {
			e.Rejected = rejected(name)
		}
		mw, err := Build(p, e)
		if err != nil {
			return nil, fmt.Errorf("policies[%d] (%s): %w", i, name, err)
		}
		mws = append(mws, mw)
	}
	return func(h http.Handler) http.Handler { return middleware.Chain(h, mws...) }, nil
}

// writer is the base of the policies' response writers: it keeps
// Flush and Unwrap for http.ResponseController, and refuses the relay's
// shortcut that hands a server's head to the connection's writer as raw
// lines (see internal/forward's setRawHeader), which would go past the
// policy's edits.
type writer struct {
	http.ResponseWriter
}

func (w *writer) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// SetRawHeader declines: the head must go through Header so that the
// policy sees it.
func (w *writer) SetRawHeader(int, []byte, int64, bool, bool, bool) bool { return false }
