package server

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tbsphathuynh/proxy/admin"
	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/forward"
	"github.com/tbsphathuynh/proxy/metrics"
)

func forwardTimeouts(t config.Timeouts) forward.Timeouts {
	return forward.Timeouts{Connect: t.Connect.D(), ResponseHeader: t.ResponseHeader.D(), IdleConnection: t.IdleConnection.D()}
}

// adminHandler serves the admin API, metrics and dashboard for cfg.
func (s *Server) adminHandler(cfg *config.Config, addr string) http.Handler {
	return admin.New(admin.Options{
		Registry: s.registry,
		State:    adminState{s},
		Token:    cfg.Admin.Token,
		Loopback: admin.IsLoopback(addr),
		Pprof:    cfg.Admin.Pprof,
		Logger:   s.log,
		// Read at each request: renewals and reloads show at once.
		Certificates: s.adminCertificates,
	})
}

// adminState is the admin API's view of the running proxy.
type adminState struct{ s *Server }

func (a adminState) Upstreams() []admin.Upstream {
	rt, now := a.s.rt.Load(), time.Now()
	out := make([]admin.Upstream, 0, len(rt.order))
	for _, name := range rt.order {
		cu := rt.upstreams[name]
		out = append(out, admin.Upstream{
			Name:     name,
			Strategy: cu.cfg.LoadBalancing.Strategy,
			Servers:  admin.ServersFromSnapshots(cu.pool.Snapshot(now)),
		})
	}
	return out
}

func (a adminState) Routes() []admin.Route {
	cfg := a.s.rt.Load().cfg
	var out []admin.Route
	for _, r := range cfg.Routes {
		rl := r.RateLimit
		if rl == nil {
			if u := cfg.UpstreamByName(r.Upstream); u != nil {
				rl = u.RateLimit
			}
		}
		out = append(out, admin.Route{
			Name: r.Name, Host: r.Match.Host, PathPrefix: r.Match.PathPrefix,
			Upstream: r.Upstream, StripPrefix: r.StripPrefix, RateLimit: rateLimitSummary(rl),
		})
	}
	if cfg.HasDefaultUpstream() {
		out = append(out, admin.Route{Name: config.DefaultUpstream, Upstream: config.DefaultUpstream, RateLimit: rateLimitSummary(cfg.RateLimit)})
	}
	return out
}

func rateLimitSummary(rl *config.RateLimit) *admin.RateLimit {
	if rl == nil {
		return nil
	}
	return &admin.RateLimit{RequestsPerSecond: rl.RequestsPerSecond, Burst: rl.Burst, Key: rl.Key, Store: rl.Store}
}

func (a adminState) Ready() error { return a.s.notReady() }

func (a adminState) Stale() []string { return a.s.stale(time.Now()) }

func (a adminState) Reload() error { return a.s.Reload() }

func (a adminState) SetDrained(up, server string, drained bool) error {
	cu := a.s.rt.Load().upstreams[up]
	if cu == nil {
		return fmt.Errorf("upstream %q: %w", up, admin.ErrNotFound)
	}
	for _, sv := range cu.pool.Servers {
		if sv.Name == server {
			// The state rebuilds the pool's snapshot when it changes.
			if sv.SetDrained(drained) {
				a.s.log.Info("server drain changed by the admin API", "upstream", up, "server", server, "drained", drained)
			}
			return nil
		}
	}
	return fmt.Errorf("upstream %q server %q: %w", up, server, admin.ErrNotFound)
}

// notReady says why the proxy should not get traffic, or nil.
func (s *Server) notReady() error {
	if s.draining.Load() {
		return errors.New("shutting down")
	}
	rt := s.rt.Load()
	for _, name := range rt.order {
		if len(rt.upstreams[name].pool.Available()) == 0 {
			return fmt.Errorf("upstream %s has no usable server", name)
		}
	}
	return nil
}

func (s *Server) ready() bool { return s.notReady() == nil }

// serverStats feeds the per-server gauges at scrape time from the live
// state, so the request path never writes a gauge.
func (s *Server) serverStats(yield func(metrics.ServerStat) bool) {
	rt, now := s.rt.Load(), time.Now()
	for _, name := range rt.order {
		for _, sv := range rt.upstreams[name].pool.Servers {
			st := metrics.ServerStat{
				Upstream: name, Server: sv.Name, Up: sv.Usable(now), InFlight: sv.InFlight(),
				Ejections: sv.Ejections(), Drained: sv.Drained(), LatencyEWMA: sv.Latency(),
			}
			if rt.upstreams[name].cfg.CircuitBreaker != nil {
				st.Circuit = sv.Circuit().String()
			}
			if !yield(st) {
				return
			}
		}
	}
}
