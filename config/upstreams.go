package config

import (
	"errors"
	"fmt"
	"sort"
)

// HasDefaultUpstream reports whether the top-level servers define the
// default upstream. Without it, requests that match no route get 404.
func (c *Config) HasDefaultUpstream() bool { return len(c.Servers) > 0 }

// UpstreamNames returns the names of every upstream, sorted, with
// DefaultUpstream first when the top-level servers define it.
func (c *Config) UpstreamNames() []string {
	names := make([]string, 0, len(c.Upstreams)+1)
	for name := range c.Upstreams {
		names = append(names, name)
	}
	sort.Strings(names)
	if c.HasDefaultUpstream() {
		names = append([]string{DefaultUpstream}, names...)
	}
	return names
}

// UpstreamByName returns the upstream called name: &c.Upstream for
// DefaultUpstream, or nil when there is no such upstream (including
// DefaultUpstream when the top-level servers are empty).
func (c *Config) UpstreamByName(name string) *Upstream {
	if name == DefaultUpstream {
		if c.HasDefaultUpstream() {
			return &c.Upstream
		}
		return nil
	}
	return c.Upstreams[name]
}

// SplitKey splits a key selector such as "header:X-Api-Key" into its kind
// ("header") and name ("X-Api-Key"); "ip" gives ("ip", ""). It is meant
// for the validated values of load_balancing.hash_key and rate_limit.key.
func SplitKey(key string) (kind, name string) {
	for i := 0; i < len(key); i++ {
		if key[i] == ':' {
			return key[:i], key[i+1:]
		}
	}
	return key, ""
}

// Where a server came from, as the admin API shows it.
const (
	// SourceConfig is a server listed in the config file.
	SourceConfig = "config"
	// SourceAPI is a server added through the admin API.
	SourceAPI = "api"
)

// PrepareServer applies the defaults of a server to s, one added at run
// time rather than read from a file, and checks it as validation checks a
// listed one. taken holds the names already used in its upstream. The
// error names the key at fault, for the operator who sent it.
func PrepareServer(s *Server, taken map[string]bool) error {
	if msg := checkServerURL(s.URL); msg != "" {
		return fmt.Errorf("url: %s", msg)
	}
	if s.Weight == 0 {
		s.Weight = 1
	}
	if s.Name == "" {
		s.Name = defaultServerName(s.URL, taken)
	}
	switch {
	case s.Weight < 1:
		return fmt.Errorf("weight: must be an integer ≥ 1, not %d", s.Weight)
	case s.MaxConnections < 0:
		return fmt.Errorf("max_connections: must be ≥ 0 (0 means unlimited), not %d", s.MaxConnections)
	case s.SlowStart < 0:
		return errors.New("slow_start: must not be negative")
	}
	return nil
}

// SameURL reports whether two server URLs name the same server
// (http://a and HTTP://A:80/ do).
func SameURL(a, b string) bool { return normalizeURL(a) == normalizeURL(b) }
