// Package httpsyntax holds the byte-level rules of HTTP/1.1 heads shared
// by the proxy's own parsers, the client-side one in h1 and the
// server-side one in forward: the token alphabet, the bytes of a field
// value, case-insensitive comparison, comma-separated token lists and
// how a field value is written.
package httpsyntax

import (
	"bytes"
	"strings"
)

// tchar is RFC 9110's token alphabet: methods and field names.
var tchar = func() (t [256]bool) {
	for _, c := range "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// plainPathByte is the bytes net/url leaves as they are in a path: a path
// of these alone is its own escaped form, and parses back unchanged.
var plainPathByte = func() (t [256]bool) {
	for _, c := range "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz$&+,-./:;=@_~" {
		t[c] = true
	}
	return t
}()

// PlainPath reports whether p is a path net/url writes and reads as it is:
// URL.EscapedPath returns it unchanged, and url.ParseRequestURI gives it
// back as Path with no RawPath.
func PlainPath[T string | []byte](p T) bool {
	for i := 0; i < len(p); i++ {
		if !plainPathByte[p[i]] {
			return false
		}
	}
	return true
}

// IsTchar reports whether c may appear in a token.
func IsTchar(c byte) bool { return tchar[c] }

// ValidValueByte reports whether net/textproto takes c in a field value:
// visible characters, space, tab, and obs-text.
func ValidValueByte(c byte) bool { return c == '\t' || c >= ' ' && c != 0x7f }

// EqualFold reports whether b equals s, both ASCII, ignoring the case of
// letters.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// HasToken reports whether token is one of the comma-separated elements of
// v, as httpguts.HeaderValuesContainsToken finds it: elements trimmed of
// spaces and tabs, compared ignoring case.
func HasToken(v []byte, token string) bool {
	for len(v) > 0 {
		elem := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			elem, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		elem = bytes.Trim(elem, " \t")
		if EqualFold(elem, token) {
			return true
		}
	}
	return false
}

// AppendFieldValue appends a header field value as net/http writes it
// (Header.Write): trimmed of ASCII white space, and with CR and LF turned
// into spaces so that a value cannot add lines to the head.
func AppendFieldValue(b []byte, v string) []byte {
	for len(v) > 0 && isASCIISpace(v[0]) {
		v = v[1:]
	}
	for len(v) > 0 && isASCIISpace(v[len(v)-1]) {
		v = v[:len(v)-1]
	}
	if strings.IndexByte(v, '\n') < 0 && strings.IndexByte(v, '\r') < 0 {
		return append(b, v...)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

func isASCIISpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// RequestID reports whether s is a request ID the proxy keeps from a
// client: 1 to 128 visible ASCII characters, which a log line can carry
// as they are.
func RequestID[T string | []byte](s T) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// underscoreAliased are the fields a name spelled with underscores for
// hyphens must not stand in for: the framing fields, and those the proxy
// sets or trusts for the server. Servers behind CGI-like gateways (PHP,
// WSGI, Rack) read X_Forwarded_For and X-Forwarded-For as one variable,
// and a lenient parser may frame a body by Transfer_Encoding.
var underscoreAliased = []string{
	"content-length", "transfer-encoding", "host", "connection", "keep-alive",
	"proxy-connection", "upgrade", "te", "trailer",
	"x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip", "x-request-id",
}

// UnderscoreAlias reports whether a field name holds an underscore and,
// read with hyphens for underscores, names one of the fields above
// (Transfer_Encoding, content_length). Such a field is dropped, as nginx
// drops every name with an underscore by default.
func UnderscoreAlias[T string | []byte](name T) bool {
	hasUnderscore := false
	for i := 0; i < len(name); i++ {
		if name[i] == '_' {
			hasUnderscore = true
			break
		}
	}
	if !hasUnderscore {
		return false
	}
Names:
	for _, a := range underscoreAliased {
		if len(a) != len(name) {
			continue
		}
		for i := 0; i < len(name); i++ {
			c := lower(name[i])
			if c == '_' {
				c = '-'
			}
			if c != a[i] {
				continue Names
			}
		}
		return true
	}
	return false
}
