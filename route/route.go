// Package route matches requests to routes by host and path prefix. A Table
// is immutable: a reload builds a new one.
package route

import (
	"net/http"
	"strings"
)

// Rule selects requests. Empty fields match anything.
type Rule struct {
	// Host is an exact host ("api.example.com") or a wildcard
	// ("*.example.com", matching any subdomain but not the bare domain).
	// Matching ignores case and the port.
	Host string
	// PathPrefix matches whole path segments: "/v1" matches "/v1" and
	// "/v1/users" but not "/v10", so strip_prefix never leaves half a
	// segment behind.
	PathPrefix string
}

type compiled struct {
	exact    string // lower-cased exact host, or ""
	suffix   string // ".example.com" for "*.example.com", or ""
	prefix   string // path prefix without a trailing slash, or ""
	slashEnd bool   // the configured prefix ended in "/"
}

// Table holds rules in order; the first match wins.
type Table struct {
	rules []compiled
}

// New compiles rules into a table. Rule i matches as index i.
func New(rules []Rule) *Table {
	t := &Table{rules: make([]compiled, len(rules))}
	for i, r := range rules {
		c := compiled{}
		h := strings.ToLower(r.Host)
		if rest, ok := strings.CutPrefix(h, "*"); ok {
			c.suffix = rest
		} else {
			c.exact = h
		}
		if r.PathPrefix != "" && r.PathPrefix != "/" {
			c.slashEnd = strings.HasSuffix(r.PathPrefix, "/")
			c.prefix = strings.TrimSuffix(r.PathPrefix, "/")
		}
		t.rules[i] = c
	}
	return t
}

// Match returns the index of the first rule matching r, or -1.
func (t *Table) Match(r *http.Request) int { return t.MatchHostPath(r.Host, r.URL.Path) }

// MatchHostPath is Match for a request to host (a Host header value, port
// and all) and path, as the direct lane, which builds no request, has them.
func (t *Table) MatchHostPath(host, path string) int {
	host = hostOnly(host)
	for i := range t.rules {
		c := &t.rules[i]
		if c.exact != "" && !strings.EqualFold(host, c.exact) {
			continue
		}
		if c.suffix != "" && !hasSuffixFold(host, c.suffix) {
			continue
		}
		if c.prefix != "" && !segmentPrefix(path, c.prefix, c.slashEnd) {
			continue
		}
		return i
	}
	return -1
}

func segmentPrefix(path, prefix string, slashEnd bool) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	if len(path) == len(prefix) {
		return !slashEnd
	}
	return path[len(prefix)] == '/'
}

func hasSuffixFold(host, suffix string) bool {
	return len(host) > len(suffix) && strings.EqualFold(host[len(host)-len(suffix):], suffix)
}

// hostOnly drops a port from a Host header value, including from a
// bracketed IPv6 literal.
func hostOnly(h string) string {
	if len(h) > 0 && h[0] == '[' {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		return h[:i]
	}
	return h
}
