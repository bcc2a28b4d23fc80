package discovery

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"
)

// Watcher looks a source up every Refresh (or when the records' TTL ends,
// if sooner) and reports each set that differs from the last good one. A
// failed or empty lookup never replaces the set: a DNS hiccup must not
// empty a pool that was serving.
type Watcher struct {
	// Upstream names the upstream in logs.
	Upstream string
	Source   Source
	Resolver *Resolver
	// Refresh is the longest time between lookups.
	Refresh time.Duration
	// MinInterval is the shortest time between lookups however short
	// the TTL (dnsmasq and many service registries answer with TTL 0);
	// 0 means one second. Refresh wins when it is shorter.
	MinInterval time.Duration
	// OnChange receives each new set, sorted; it is called from Run's
	// goroutine, never twice at once.
	OnChange func([]Target)
	// OnError is called on every failed or empty lookup.
	OnError func(error)
	// Log receives a WARN when lookups start failing and an INFO when
	// they work again: one pair per outage, not one line per attempt.
	Log *slog.Logger

	last []Target
	// good is the unix-nano time of the last lookup that found servers.
	good atomic.Int64
}

// LastGood is when a lookup last found servers; zero before the first.
func (w *Watcher) LastGood() time.Time {
	n := w.good.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Seed sets the set the watcher starts from, such as the result of a
// first lookup made at start-up, so an identical first answer is not
// reported as a change.
func (w *Watcher) Seed(ts []Target, at time.Time) {
	w.last = ts
	w.good.Store(at.UnixNano())
}

// Once looks the source up, reports a changed set, and returns when to
// look again.
func (w *Watcher) Once(ctx context.Context, failing *bool) time.Duration {
	floor := w.MinInterval
	if floor <= 0 {
		floor = time.Second
	}
	floor = min(floor, w.Refresh)
	ts, ttl, err := w.Resolver.Lookup(ctx, w.Source)
	if err != nil {
		if ctx.Err() != nil {
			return w.Refresh
		}
		if w.OnError != nil {
			w.OnError(err)
		}
		if !*failing && w.Log != nil {
			w.Log.Warn("discovery lookup failed; keeping the last good servers",
				"upstream", w.Upstream, "source", w.Source.String(), "servers", len(w.last), "err", err)
		}
		*failing = true
		return w.Refresh
	}
	if *failing && w.Log != nil {
		w.Log.Info("discovery lookup works again", "upstream", w.Upstream, "source", w.Source.String(), "servers", len(ts))
	}
	*failing = false
	w.good.Store(time.Now().UnixNano())
	if !slices.Equal(ts, w.last) {
		w.last = ts
		if w.OnChange != nil {
			w.OnChange(ts)
		}
	}
	next := w.Refresh
	if ttl >= 0 && ttl < next {
		next = max(ttl, floor)
	}
	return next
}

// Run looks the source up until ctx ends: at once, or after Refresh when
// Seed gave it a set.
func (w *Watcher) Run(ctx context.Context) {
	failing := false
	var next time.Duration
	if w.last != nil {
		next = w.Refresh
	}
	for {
		if next > 0 {
			t := time.NewTimer(next)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		next = w.Once(ctx, &failing)
		if ctx.Err() != nil {
			return
		}
	}
}
