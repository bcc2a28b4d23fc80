package config

import (
	"errors"
	"net"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// listen checks a host:port listen address and reports whether it is valid.
func (c *checker) listen(path, addr string) bool {
	if msg := checkHostPort(addr); msg != "" {
		c.errf(path, "%s", msg)
		return false
	}
	return true
}

func checkHostPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if _, perr := strconv.Atoi(addr); perr == nil {
			return quote(addr) + ` is not a host:port address; write ":` + addr + `" to use every interface`
		}
		return quote(addr) + ` is not a host:port address such as ":8080" or "127.0.0.1:8080"`
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return quote(port) + " is not a port number (0-65535)"
	}
	if host != "" && !validHost(host) {
		return quote(host) + " is not a host name or IP address"
	}
	return ""
}

// isLoopback reports whether a listen address only accepts connections
// from the same machine. An empty host means every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// sameSocket reports whether listening on a and on b would clash: the
// same port (not 0, which picks a free one) on the same host, or on every
// interface for either of them.
func sameSocket(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	local := func(h string) bool { return strings.EqualFold(h, "localhost") || h == "127.0.0.1" }
	return wild(ha) || wild(hb) || strings.EqualFold(ha, hb) || local(ha) && local(hb)
}

// checkServerURL returns why raw is not a usable server URL, or "".
func checkServerURL(raw string) string {
	if raw == "" {
		return "required, such as http://10.0.0.1:8080"
	}
	if !strings.Contains(raw, "://") {
		return quote(raw) + " needs a scheme: http://" + strings.TrimPrefix(raw, "//")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return quote(raw) + " is not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "scheme must be http or https, not " + quote(u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return quote(raw) + " has no host"
	case u.User != nil:
		return "credentials in the URL are not sent to the server; remove " + quote(u.User.Username()+"@")
	case u.RawQuery != "" || u.ForceQuery:
		return "must not have a query (?...)"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "must not have a fragment (#...)"
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return quote(p) + " is not a port number (1-65535)"
		}
	}
	if !validHost(u.Hostname()) {
		return quote(u.Hostname()) + " is not a host name or IP address"
	}
	return ""
}

// normalizeURL gives equal strings for URLs that reach the same place:
// case-insensitive scheme and host, default port explicit, no trailing /.
func normalizeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(host, port) + strings.TrimRight(u.EscapedPath(), "/")
}

// checkKey validates a key selector such as "ip" or "header:X-Api-Key"
// against the allowed kinds; names must be HTTP tokens (RFC 9110 §5.6.2).
func checkKey(key string, kinds ...string) string {
	kind, name := SplitKey(key)
	var plain, named []string
	for _, k := range kinds {
		if k == "header" || k == "cookie" {
			named = append(named, k+":NAME")
		} else {
			plain = append(plain, k)
		}
	}
	want := strings.Join(append(plain, named...), " | ")
	for _, k := range kinds {
		if kind != k {
			continue
		}
		isNamed := k == "header" || k == "cookie"
		switch {
		case isNamed && name == "":
			return "needs a name after " + quote(k+":") + ", such as " + quote(k+":X-Api-Key")
		case isNamed && !validToken(name):
			return quote(name) + " is not a valid " + k + " name"
		case !isNamed && strings.Contains(key, ":"):
			return quote(k) + " takes no name; must be " + want
		}
		return ""
	}
	return "must be " + want + ", not " + quote(key)
}

// validToken reports whether s is an RFC 9110 token, the syntax of header
// and cookie names.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

func validIPOrCIDR(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	_, err := netip.ParsePrefix(s)
	return err == nil
}

// validHost reports whether s is an IP address or a DNS host name.
func validHost(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			ok := r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
			if !ok {
				return false
			}
		}
	}
	return true
}

// validHostPattern accepts an exact host name or "*." and a domain.
func validHostPattern(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if strings.Contains(s, "*") {
		return false
	}
	return validHost(s)
}

// validName reports whether an upstream name is usable in paths, metric
// labels and URLs.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		ok := r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !ok {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Min, Max int }

// StatusRanges is a parsed expected_status.
type StatusRanges []StatusRange

// ParseStatusRanges parses health_checks.expected_status: a code ("200"), a
// range ("200-399"), or a comma-separated list of those ("200,204,300-308").
// Codes must be within 100-599.
func ParseStatusRanges(s string) (StatusRanges, error) {
	bad := errors.New(quote(s) + ` is not a status list such as "200", "200-399" or "200,204"`)
	if strings.TrimSpace(s) == "" {
		return nil, bad
	}
	var out StatusRanges
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		if !isRange {
			hi = lo
		}
		a, errA := strconv.Atoi(strings.TrimSpace(lo))
		b, errB := strconv.Atoi(strings.TrimSpace(hi))
		switch {
		case errA != nil || errB != nil:
			return nil, bad
		case a < 100 || a > 599 || b < 100 || b > 599:
			return nil, errors.New("status codes must be between 100 and 599, in " + quote(s))
		case a > b:
			return nil, errors.New("range " + quote(strings.TrimSpace(part)) + " runs backwards")
		}
		out = append(out, StatusRange{a, b})
	}
	return out, nil
}

// Match reports whether code falls in any of the ranges.
func (rs StatusRanges) Match(code int) bool {
	for _, r := range rs {
		if code >= r.Min && code <= r.Max {
			return true
		}
	}
	return false
}
