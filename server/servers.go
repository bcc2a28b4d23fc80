package server

import (
	"fmt"
	"slices"

	"github.com/tbsphathuynh/proxy/admin"
	"github.com/tbsphathuynh/proxy/config"
)

// edits are the admin API's changes to one upstream's servers, laid over
// the config on every compile. A nil *edits changes nothing.
type edits struct {
	// added are servers added through the API (Source api).
	added []config.Server
	// patched and removed are keyed by the URL of a config server.
	patched map[string]serverPatch
	removed map[string]bool
}

type serverPatch struct {
	weight *int
	backup *bool
}

// apply returns static with the changes made: removed servers left out,
// patched ones changed, added ones appended.
func (e *edits) apply(static []config.Server) []config.Server {
	if e == nil {
		return static
	}
	out := make([]config.Server, 0, len(static)+len(e.added))
	for _, sc := range static {
		if e.removed[sc.URL] {
			continue
		}
		if p, ok := e.patched[sc.URL]; ok {
			p.to(&sc)
		}
		out = append(out, sc)
	}
	return append(out, e.added...)
}

func (p serverPatch) to(sc *config.Server) {
	if p.weight != nil {
		sc.Weight = *p.weight
	}
	if p.backup != nil {
		sc.Backup = *p.backup
	}
}

// keptEdits is what survives a reload to cfg: changes to the servers the
// new config still has, and added servers of upstreams it still has,
// unless it now lists them itself.
func keptEdits(cfg *config.Config, cur map[string]*edits) map[string]*edits {
	out := make(map[string]*edits)
	for name, e := range cur {
		uc := cfg.UpstreamByName(name)
		if uc == nil {
			continue
		}
		has := func(u string) bool {
			return slices.ContainsFunc(uc.Servers, func(sc config.Server) bool { return sc.URL == u })
		}
		ne := &edits{patched: map[string]serverPatch{}, removed: map[string]bool{}}
		for u, p := range e.patched {
			if has(u) {
				ne.patched[u] = p
			}
		}
		for u := range e.removed {
			if has(u) {
				ne.removed[u] = true
			}
		}
		for _, sc := range e.added {
			if !slices.ContainsFunc(uc.Servers, func(c config.Server) bool { return config.SameURL(c.URL, sc.URL) || c.Name == sc.Name }) {
				ne.added = append(ne.added, sc)
			}
		}
		out[name] = ne
	}
	return out
}

// editsOf returns upstream name's edits, creating them.
func (s *Server) editsOf(name string) *edits {
	if s.edits == nil {
		s.edits = make(map[string]*edits)
	}
	e := s.edits[name]
	if e == nil {
		e = &edits{patched: map[string]serverPatch{}, removed: map[string]bool{}}
		s.edits[name] = e
	}
	return e
}

// serving returns the servers upstream up runs with now, config, api and
// dns alike, or ErrNotFound.
func (s *Server) serving(up string) ([]config.Server, error) {
	if s.base.UpstreamByName(up) == nil {
		return nil, fmt.Errorf("upstream %q: %w", up, admin.ErrNotFound)
	}
	uc := s.rt.Load().cfg.UpstreamByName(up)
	if uc == nil {
		return nil, fmt.Errorf("upstream %q: %w", up, admin.ErrNotFound)
	}
	return uc.Servers, nil
}

// owned finds server name of upstream up for a change, refusing one DNS
// discovery owns: the next lookup would undo the change.
func (s *Server) owned(up, name string) (config.Server, error) {
	cur, err := s.serving(up)
	if err != nil {
		return config.Server{}, err
	}
	i := slices.IndexFunc(cur, func(sc config.Server) bool { return sc.Name == name })
	if i < 0 {
		return config.Server{}, fmt.Errorf("upstream %q server %q: %w", up, name, admin.ErrNotFound)
	}
	if cur[i].Source == config.SourceDNS {
		return config.Server{}, fmt.Errorf("upstream %q server %q is found by DNS discovery, which owns it: %w", up, name, admin.ErrConflict)
	}
	return cur[i], nil
}

// reapply compiles and swaps in the effective config; on failure undo
// restores the edits as they were.
func (s *Server) reapply(undo func()) error {
	if err := s.apply(s.effective(s.base, s.watches)); err != nil {
		undo()
		return err
	}
	return nil
}

func (a adminState) AddServer(up string, spec admin.ServerSpec) error {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.serving(up)
	if err != nil {
		return err
	}
	sc := config.Server{URL: spec.URL, Name: spec.Name, Weight: spec.Weight, Backup: spec.Backup, MaxConnections: spec.MaxConnections, Source: config.SourceAPI}
	taken := map[string]bool{}
	for _, c := range cur {
		taken[c.Name] = true
	}
	for _, c := range cur {
		if config.SameURL(c.URL, sc.URL) {
			return fmt.Errorf("upstream %q has %s already (server %q, from %s): %w", up, sc.URL, c.Name, sourceOf(c), admin.ErrConflict)
		}
	}
	if taken[sc.Name] {
		return fmt.Errorf("upstream %q has a server named %q already: %w", up, sc.Name, admin.ErrConflict)
	}
	if err := config.PrepareServer(&sc, taken); err != nil {
		return fmt.Errorf("%w: %w", admin.ErrInvalid, err)
	}
	e := s.editsOf(up)
	e.added = append(e.added, sc)
	return s.reapply(func() { e.added = e.added[:len(e.added)-1] })
}

func (a adminState) RemoveServer(up, name string) error {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, err := s.owned(up, name)
	if err != nil {
		return err
	}
	e := s.editsOf(up)
	if sc.Source == config.SourceAPI {
		old := e.added
		e.added = slices.DeleteFunc(slices.Clone(e.added), func(c config.Server) bool { return c.Name == name })
		return s.reapply(func() { e.added = old })
	}
	e.removed[sc.URL] = true
	return s.reapply(func() { delete(e.removed, sc.URL) })
}

func (a adminState) PatchServer(up, name string, p admin.ServerPatch) error {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, err := s.owned(up, name)
	if err != nil {
		return err
	}
	if p.Weight != nil && *p.Weight < 1 {
		return fmt.Errorf("%w: weight: must be an integer ≥ 1, not %d", admin.ErrInvalid, *p.Weight)
	}
	if p.Weight != nil || p.Backup != nil {
		e := s.editsOf(up)
		if sc.Source == config.SourceAPI {
			i := slices.IndexFunc(e.added, func(c config.Server) bool { return c.Name == name })
			old := e.added[i]
			serverPatch{p.Weight, p.Backup}.to(&e.added[i])
			if err := s.reapply(func() { e.added[i] = old }); err != nil {
				return err
			}
		} else {
			old, had := e.patched[sc.URL]
			np := old
			if p.Weight != nil {
				np.weight = p.Weight
			}
			if p.Backup != nil {
				np.backup = p.Backup
			}
			e.patched[sc.URL] = np
			if err := s.reapply(func() {
				if had {
					e.patched[sc.URL] = old
				} else {
					delete(e.patched, sc.URL)
				}
			}); err != nil {
				return err
			}
		}
	}
	if p.Drain != nil {
		for _, sv := range s.rt.Load().upstreams[up].pool.Servers {
			if sv.Name == name && sv.SetDrained(*p.Drain) {
				s.log.Info("server drain changed by the admin API", "upstream", up, "server", name, "drained", *p.Drain)
			}
		}
	}
	return nil
}

func sourceOf(sc config.Server) string {
	if sc.Source == "" {
		return config.SourceConfig
	}
	return sc.Source
}
