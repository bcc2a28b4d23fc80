package balancer

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
)

// keyKind says which part of a request consistent_hash hashes.
type keyKind uint8

const (
	keyIP keyKind = iota
	keyURI
	keyHeader
	keyCookie
)

// hashKey is a parsed hash_key spec. It is parsed once when the strategy is
// built, so a pick only reads fields and never re-parses the spec.
type hashKey struct {
	kind keyKind
	// name is the header name in canonical form, or the cookie name.
	name string
}

// parseHashKey parses ip, uri, header:NAME or cookie:NAME; "" means ip.
func parseHashKey(spec string) (hashKey, error) {
	kind, name, hasName := strings.Cut(spec, ":")
	switch kind {
	case "", "ip", "uri":
		if hasName {
			return hashKey{}, fmt.Errorf("balancer: hash key %q: %s takes no name", spec, kind)
		}
		if kind == "uri" {
			return hashKey{kind: keyURI}, nil
		}
		return hashKey{kind: keyIP}, nil
	case "header", "cookie":
		if !hasName || name == "" {
			return hashKey{}, fmt.Errorf("balancer: hash key %q: want %s:NAME", spec, kind)
		}
		if !isToken(name) {
			return hashKey{}, fmt.Errorf("balancer: hash key %q: %q is not a valid %s name", spec, name, kind)
		}
		if kind == "header" {
			// Canonical once here, so a pick indexes the header map
			// directly instead of canonicalising per request.
			return hashKey{kind: keyHeader, name: textproto.CanonicalMIMEHeaderKey(name)}, nil
		}
		return hashKey{kind: keyCookie, name: name}, nil
	}
	return hashKey{}, fmt.Errorf("balancer: hash key %q: want ip, uri, header:NAME or cookie:NAME", spec)
}

// String returns the spec the key was parsed from, in canonical form.
func (k hashKey) String() string {
	switch k.kind {
	case keyURI:
		return "uri"
	case keyHeader:
		return "header:" + k.name
	case keyCookie:
		return "cookie:" + k.name
	}
	return "ip"
}

// isToken reports whether s is an RFC 9110 token, the grammar of both
// header field names and cookie names (RFC 6265 §4.1.1).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return s != ""
}

// extract returns the parts of r the key hashes, as substrings of the
// request (no allocation). uri yields the path and the raw query; the
// others yield one part. ok is false when the request lacks the header or
// cookie; the caller then hashes the client address instead, so such
// clients still stick to one server.
func (k hashKey) extract(r *http.Request) (a, b string, ok bool) {
	switch k.kind {
	case keyURI:
		if r.URL == nil {
			return r.RequestURI, "", true
		}
		return r.URL.Path, r.URL.RawQuery, true
	case keyHeader:
		if v := r.Header[k.name]; len(v) > 0 && v[0] != "" {
			return v[0], "", true
		}
		return "", "", false
	case keyCookie:
		v, found := cookieValue(r.Header["Cookie"], k.name)
		return v, "", found
	}
	return clientHost(r.RemoteAddr), "", true
}

// sum hashes the key of r.
func (k hashKey) sum(r *http.Request) uint64 {
	a, b, ok := k.extract(r)
	if !ok {
		return mix(hashString(fnvOffset, clientHost(r.RemoteAddr)))
	}
	h := hashString(fnvOffset, a)
	if b != "" {
		h = hashString(hashString(h, "?"), b)
	}
	return mix(h)
}

// cookieValue finds name in Cookie header lines ("a=1; b=2") by hand:
// http.Request.Cookie parses and allocates every cookie of the request to
// return one.
func cookieValue(lines []string, name string) (string, bool) {
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			n, v, found := strings.Cut(part, "=")
			if !found || n != name {
				continue
			}
			// RFC 6265 §4.1.1 allows the value in double quotes.
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}
