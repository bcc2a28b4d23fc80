package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// KeyFunc returns the rate-limit key of a request: requests with equal keys
// share one budget.
type KeyFunc func(r *http.Request) string

// Key namespaces. A client without the configured header is limited by
// address under ipPrefix; a header value that could be mistaken for such a
// key, or for a digest, is moved under escapePrefix, so no header value can
// land in the bucket of an address (addresses are not secret, API keys are).
const (
	ipPrefix     = "ip:"
	escapePrefix = "hdr:"
	digestPrefix = "sha256:"
	// maxHeaderKey bounds the memory and Redis key size one client can make
	// us hold; longer values are replaced by their SHA-256 digest.
	maxHeaderKey = 128
)

// ParseKey compiles a key spec from the config:
//
//   - "ip": the client address, as ClientIP finds it.
//   - "header:NAME": the value of request header NAME (the first one when
//     repeated). A request without it, or with it empty, is limited by its
//     client address instead, as "ip:" followed by the address, so clients
//     that omit the header do not all share one bucket. Header values are
//     used as they are, except that values longer than 128 bytes become
//     "sha256:" and their hex digest, and values beginning with "ip:",
//     "hdr:" or "sha256:" get "hdr:" put in front.
//
// trusted lists the proxies whose X-Forwarded-For is believed; see ClientIP.
func ParseKey(spec string, trusted []netip.Prefix) (KeyFunc, error) {
	if spec == "ip" {
		return func(r *http.Request) string { return ClientIP(r, trusted) }, nil
	}
	name, ok := strings.CutPrefix(spec, "header:")
	if !ok {
		return nil, fmt.Errorf("ratelimit: key %q: want ip or header:NAME", spec)
	}
	if !validHeaderName(name) {
		return nil, fmt.Errorf("ratelimit: key %q: %q is not a valid header name", spec, name)
	}
	canon := http.CanonicalHeaderKey(name)
	return func(r *http.Request) string {
		if v := r.Header[canon]; len(v) > 0 && v[0] != "" {
			return headerKey(v[0])
		}
		return ipPrefix + ClientIP(r, trusted)
	}, nil
}

// headerKey maps a header value to a key, keeping the namespaces apart.
func headerKey(v string) string {
	switch {
	case len(v) > maxHeaderKey:
		sum := sha256.Sum256([]byte(v))
		return digestPrefix + hex.EncodeToString(sum[:])
	case strings.HasPrefix(v, ipPrefix), strings.HasPrefix(v, escapePrefix), strings.HasPrefix(v, digestPrefix):
		return escapePrefix + v
	}
	return v
}

// validHeaderName reports whether s is an RFC 9110 token (section 5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ParseTrustedProxies parses the trusted_proxies list of the config: each
// entry an address ("10.0.0.1", taken as a single host) or a CIDR prefix
// ("10.0.0.0/8"). IPv4-mapped IPv6 entries are unmapped, as ClientIP
// unmaps the addresses it compares.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("ratelimit: trusted proxy %q: %w", s, err)
			}
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("ratelimit: trusted proxy %q: want an IP address or CIDR prefix", s)
		}
		a = a.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ClientIP returns the address of the client that sent r, in canonical form
// (IPv4-mapped IPv6 addresses unmapped, zones dropped), or "" when
// r.RemoteAddr holds no IP address (for example a Unix socket).
//
// With no trusted prefixes it is the peer address, from r.RemoteAddr. When
// the peer is inside a trusted prefix, X-Forwarded-For is walked from the
// right, since each trusted hop appends the address it saw: the first entry
// that is not trusted is the client. Entries further left were written by
// the client itself and are never believed. If an entry a trusted hop wrote
// is not an address, or every entry is trusted, the result is the last
// trusted address reached, which is real and stable.
//
// Addresses are unmapped before they are compared with trusted, so list
// IPv4 ranges in IPv4 form.
//
// The result is a substring of r.RemoteAddr or the header whenever that
// spelling is already canonical, so the common cases do not allocate.
func ClientIP(r *http.Request, trusted []netip.Prefix) string {
	peer, ps, ok := parseHostPort(r.RemoteAddr)
	if !ok {
		return ""
	}
	if !isTrusted(peer, trusted) {
		return canonical(peer, ps)
	}
	last, ls := peer, ps
	lines := r.Header["X-Forwarded-For"]
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		for line != "" {
			var elem string
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				line, elem = line[:j], line[j+1:]
			} else {
				line, elem = "", line
			}
			elem = strings.TrimSpace(elem)
			if elem == "" {
				continue // "a,,b" and trailing commas: nobody's address
			}
			addr, s, ok := parseHostPort(elem)
			if !ok {
				return canonical(last, ls)
			}
			if !isTrusted(addr, trusted) {
				return canonical(addr, s)
			}
			last, ls = addr, s
		}
	}
	return canonical(last, ls)
}

// parseHostPort parses "addr", "addr:port", "[addr]" or "[addr]:port" and
// returns the address, unmapped and without zone, and the substring of s
// that spells it. It splits by hand rather than trying netip.ParseAddrPort
// first, because a failed parse allocates its error.
func parseHostPort(s string) (netip.Addr, string, bool) {
	host := s
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, "", false
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" && !isPort(rest) {
			return netip.Addr{}, "", false
		}
	} else if i := strings.IndexByte(s, ':'); i >= 0 && strings.IndexByte(s[i+1:], ':') < 0 {
		// Exactly one colon: IPv4 and a port. (IPv6 has at least two.)
		if !isPort(s[i:]) {
			return netip.Addr{}, "", false
		}
		host = s[:i]
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, "", false
	}
	if strings.HasPrefix(s, "[") && addr.Is4() {
		return netip.Addr{}, "", false // "[1.2.3.4]" is no URI host (RFC 3986 section 3.2.2)
	}
	// A zone names a link on the peer's side; Prefix.Contains never matches
	// a zoned address, and the zone adds nothing to who the client is.
	return addr.Unmap().WithZone(""), host, true
}

// isPort reports whether s is ":" followed by 1 to 5 digits.
func isPort(s string) bool {
	if len(s) < 2 || len(s) > 6 || s[0] != ':' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isTrusted(addr netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// canonical returns addr in canonical text, reusing spelled (its text as
// found in the request) when that already is canonical.
func canonical(addr netip.Addr, spelled string) string {
	var buf [64]byte
	b := addr.AppendTo(buf[:0])
	if string(b) == spelled { // compared without allocating
		return spelled
	}
	return string(b)
}
