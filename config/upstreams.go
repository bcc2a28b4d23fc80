package config

import "sort"

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
