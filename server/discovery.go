package server

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/discovery"
)

// watch is the DNS discovery of one upstream: its watcher, the servers
// it last found, and how to stop it.
type watch struct {
	cfg config.DNSDiscovery
	w   *discovery.Watcher
	// targets is the last good set; guarded by Server.mu.
	targets []discovery.Target
	// since is when the watch began, the age of a set never confirmed.
	since   time.Time
	ctx     context.Context
	cancel  context.CancelFunc
	running bool
}

// firstLookup bounds the lookup made before an upstream first serves, so
// a dead DNS server delays start-up or a reload by this much at most.
const firstLookup = 3 * time.Second

// newWatches returns the discovery of each upstream of cfg that has one:
// kept from cur when its settings did not change, else new and seeded by
// one lookup, so a new upstream starts with its servers.
func (s *Server) newWatches(cfg *config.Config, cur map[string]*watch) map[string]*watch {
	out := make(map[string]*watch)
	for name, uc := range cfg.Upstreams {
		if uc == nil || uc.Discovery == nil || uc.Discovery.DNS == nil {
			continue
		}
		dc := *uc.Discovery.DNS
		if old := cur[name]; old != nil && old.cfg == dc {
			out[name] = old
			continue
		}
		out[name] = s.newWatch(name, dc)
	}
	return out
}

func (s *Server) newWatch(name string, dc config.DNSDiscovery) *watch {
	s.metrics.DiscoveryWatched(name)
	ctx, cancel := context.WithCancel(context.Background())
	wt := &watch{cfg: dc, ctx: ctx, cancel: cancel, since: time.Now()}
	wt.w = &discovery.Watcher{
		Upstream: name,
		Source:   discovery.Source{Name: dc.Name, Port: dc.Port, SRV: dc.SRV},
		Resolver: &discovery.Resolver{Server: dc.Resolver},
		Refresh:  dc.Refresh.D(),
		Log:      s.log,
		OnError:  func(error) { s.metrics.DiscoveryError(name) },
		OnChange: func(ts []discovery.Target) { s.discovered(name, wt, ts) },
	}
	// The first lookup seeds the set without OnChange: the caller holds
	// s.mu and compiles the runtime itself. A failure here is retried at
	// once by Run, which logs it.
	lctx, lcancel := context.WithTimeout(ctx, firstLookup)
	defer lcancel()
	if ts, _, err := wt.w.Resolver.Lookup(lctx, wt.w.Source); err == nil {
		wt.targets = ts
		wt.w.Seed(ts, time.Now())
	} else {
		s.metrics.DiscoveryError(name)
	}
	return wt
}

// discovered swaps in a runtime with the servers wt found: the ones that
// stay keep their state, new ones ramp up under slow start, and vanished
// ones drain, finishing their requests on the runtime they started on.
func (s *Server) discovered(name string, wt *watch, ts []discovery.Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A reload may have replaced this watch since the lookup started;
	// the first lookup (not yet running) only records its set.
	if wt.ctx.Err() != nil || s.draining.Load() {
		return
	}
	before := len(wt.targets)
	wt.targets = ts
	if err := s.apply(s.effective(s.base, s.watches)); err != nil {
		s.log.Error("discovery: servers changed but the new set could not be applied; keeping the current one", "upstream", name, "err", err)
		return
	}
	s.log.Info("discovery changed the servers", "upstream", name, "servers", len(ts), "before", before)
}

// staleRefreshes is how many refreshes may pass without a good lookup
// before /readyz calls an upstream's discovered set stale.
const staleRefreshes = 3

// stale lists the upstreams whose discovered servers no lookup has
// confirmed for staleRefreshes refreshes. They keep serving: a DNS outage
// is no reason to take a working proxy out of its load balancer, so
// /readyz says it and stays 200.
func (s *Server) stale(now time.Time) []string {
	view := s.watchView.Load()
	if view == nil {
		return nil
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(*view)) {
		wt := (*view)[name]
		last := wt.w.LastGood()
		if last.IsZero() {
			last = wt.since
		}
		limit := staleRefreshes * wt.cfg.Refresh.D()
		if age := now.Sub(last); age > limit {
			out = append(out, fmt.Sprintf("upstream %s: servers from DNS last confirmed %s ago (more than %d refreshes)",
				name, age.Round(time.Second), staleRefreshes))
		}
	}
	return out
}

// setWatches makes watches the current ones; call it with s.mu held.
func (s *Server) setWatches(watches map[string]*watch) {
	s.watches = watches
	s.watchView.Store(&watches)
}

// startWatches runs every watch not running yet; call it with s.mu held.
func (s *Server) startWatches() {
	for _, wt := range s.watches {
		if wt.running {
			continue
		}
		wt.running = true
		s.discWG.Add(1)
		go func() {
			defer s.discWG.Done()
			wt.w.Run(wt.ctx)
		}()
	}
}

// stopWatches stops the watches of old that next does not keep.
func stopWatches(old, next map[string]*watch) {
	for name, wt := range old {
		if next[name] != wt {
			wt.cancel()
		}
	}
}

// effective returns cfg with what runs on top of it: the admin API's
// changes to each upstream's servers, then the servers its discovery
// found. cfg itself is not changed: it stays the file's config, which the
// next change starts from again.
func (s *Server) effective(cfg *config.Config, watches map[string]*watch) *config.Config {
	if len(watches) == 0 && len(s.edits) == 0 {
		return cfg
	}
	out := *cfg
	out.Upstreams = maps.Clone(cfg.Upstreams)
	for _, name := range cfg.UpstreamNames() {
		wt, ed := watches[name], s.edits[name]
		if wt == nil && ed == nil {
			continue
		}
		u := *cfg.UpstreamByName(name)
		u.Servers = ed.apply(u.Servers)
		if wt != nil {
			u.Servers = discoveredServers(u.Servers, wt.cfg, wt.targets)
		}
		if name == config.DefaultUpstream {
			out.Upstream = u
		} else {
			out.Upstreams[name] = &u
		}
	}
	return &out
}

// discoveredServers appends a server per target to static, skipping
// targets a static server already names (by URL or name).
func discoveredServers(static []config.Server, dc config.DNSDiscovery, ts []discovery.Target) []config.Server {
	taken := make(map[string]bool, 2*len(static))
	for _, sc := range static {
		taken[sc.URL], taken["name:"+sc.Name] = true, true
	}
	out := append(make([]config.Server, 0, len(static)+len(ts)), static...)
	for _, t := range ts {
		hp := t.HostPort()
		u := dc.Scheme + "://" + hp
		if taken[u] || taken["name:"+hp] {
			continue
		}
		out = append(out, config.Server{
			URL:            u,
			Name:           hp,
			Weight:         t.Weight,
			Backup:         t.Backup,
			MaxConnections: dc.MaxConnections,
			SlowStart:      dc.SlowStart,
			Source:         config.SourceDNS,
		})
	}
	return out
}
