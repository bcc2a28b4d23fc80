package forward

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/tbsphathuynh/proxy/internal/httpsyntax"
)

// Values the proxy sets itself. They are shared by every request and must
// never be modified: net/http only reads header values, and an append to a
// slice of capacity one copies it.
var (
	emptyValue   = []string{""}
	protoHTTP    = []string{"http"}
	protoHTTPS   = []string{"https"}
	teTrailers   = []string{"trailers"}
	connUpgrade  = []string{"Upgrade"}
	requestIDKey = "X-Request-Id"
)

// isHop reports whether k is a hop-by-hop header: one that describes a
// single connection and is never relayed (RFC 9110 §7.6.1; Keep-Alive,
// Proxy-Connection and the rest from RFC 2616 §13.5.1 for older peers).
// Trailer is here because the proxy announces the trailers it relays
// itself. k is in canonical form, as net/http stores keys.
func isHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// listed reports whether the Connection header values conn name k: those
// headers are hop-by-hop too (RFC 9110 §7.6.1). Tokens are separated by
// commas with optional white space and compared without regard to case.
func listed(conn []string, k string) bool {
	for _, v := range conn {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if tok = strings.Trim(tok, " \t"); tok != "" && strings.EqualFold(tok, k) {
				return true
			}
		}
	}
	return false
}

// errSpaceBeforeColon is a server's answer with white space between a
// header name and its colon. net/textproto keeps such a line as a header
// of another name (golang/go#34540), so "Transfer-Encoding : chunked"
// would leave the answer framed by its Content-Length, and relayed, the
// field would reach the client for its own parser to read either way.
// RFC 9112 §5.1 lets a proxy reject the message, which is what nginx and
// HAProxy do too.
var errSpaceBeforeColon = errors.New("server's answer has white space between a header name and its colon (RFC 9112 §5.1)")

// spaceInName reports whether any name in h holds a space: only the white
// space before a colon gets one through net/textproto.
func spaceInName(h http.Header) bool {
	for k := range h {
		if strings.IndexByte(k, ' ') >= 0 {
			return true
		}
	}
	return false
}

// hasToken reports whether any of values holds token in its comma-separated
// list, without regard to case.
func hasToken(values []string, token string) bool { return listed(values, token) }

// upgradeType is the protocol a request or response switches to, or "".
func upgradeType(h http.Header) string {
	if !hasToken(h["Connection"], "Upgrade") {
		return ""
	}
	if v := h["Upgrade"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// printable reports whether s is printable ASCII, as a protocol name in
// Upgrade must be before it is echoed anywhere.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// outHeader builds the header a server gets for in: every end-to-end
// header of the client's, shared rather than copied since nothing along
// the way modifies a value, without the hop-by-hop ones and without
// forwarding headers the client may have forged; then the proxy's own.
// It allocates the map and, when the client sent a chain, the new
// X-Forwarded-For value.
func (ob *outbound) outHeader(in *http.Request, requestID, upType string) http.Header {
	ih := in.Header
	conn := ih["Connection"]
	h := outHeaders.Get().(http.Header)
	var prior []string
	for k, v := range ih {
		switch {
		case isHop(k), len(conn) > 0 && listed(conn, k):
			continue
		case k == "X-Forwarded-For":
			// Kept and appended to, as nginx's $proxy_add_x_forwarded_for.
			prior = v
			continue
		case k == "Forwarded", k == "X-Forwarded-Host", k == "X-Forwarded-Proto":
			// Set by the proxy below, never trusted from the client.
			continue
		case httpsyntax.UnderscoreAlias(k):
			continue
		}
		h[k] = v
	}

	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		ob.xff[0] = joinChain(prior, ip)
		h["X-Forwarded-For"] = ob.xff[:]
	}
	ob.xfh[0] = in.Host
	h["X-Forwarded-Host"] = ob.xfh[:]
	if in.TLS != nil {
		h["X-Forwarded-Proto"] = protoHTTPS
	} else {
		h["X-Forwarded-Proto"] = protoHTTP
	}
	if requestID != "" {
		ob.rid[0] = requestID
		h[requestIDKey] = ob.rid[:]
	}
	// Servers that stream trailers only do so when asked (golang/go#21096);
	// the client's own TE was dropped above as hop-by-hop.
	if hasToken(ih["Te"], "trailers") {
		h["Te"] = teTrailers
	}
	// Without a User-Agent of the client's, net/http would send its own.
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = emptyValue
	}
	// An upgrade is the one hop-by-hop exchange the proxy takes part in.
	if upType != "" {
		h["Connection"] = connUpgrade
		h["Upgrade"] = []string{upType}
	}
	return h
}

// joinChain appends ip to an X-Forwarded-For chain, folding several header
// lines into one.
func joinChain(prior []string, ip string) string {
	if len(prior) == 0 {
		return ip
	}
	n := len(ip)
	for _, p := range prior {
		n += len(p) + 2
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range prior {
		b.WriteString(p)
		b.WriteString(", ")
	}
	b.WriteString(ip)
	return b.String()
}

// copyResponseHeader adds the end-to-end headers of a server's response to
// dst. Values are shared, not copied.
func copyResponseHeader(dst, src http.Header) {
	conn := src["Connection"]
	for k, v := range src {
		if isHop(k) || len(conn) > 0 && listed(conn, k) {
			continue
		}
		if prev, ok := dst[k]; ok {
			dst[k] = append(prev[:len(prev):len(prev)], v...)
			continue
		}
		dst[k] = v
	}
}

// cleanQuery drops query parameters a server might parse differently from
// the proxy (semicolons as separators, broken escapes, or more than
// net/url accepts), the way httputil.ReverseProxy does since Go 1.17
// (golang/go#25192): a parameter smuggled past the proxy's view must not
// reach the server. The query is rewritten only when it holds one.
func cleanQuery(q string) string {
	if !queryClean(q) {
		return reencode(q)
	}
	return q
}

// queryClean reports whether cleanQuery leaves q as it is.
func queryClean[T string | []byte](q T) bool {
	params := 0
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case ';':
			return false
		case '&':
			if params++; params >= maxQueryParams {
				return false
			}
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

// maxQueryParams is net/url's limit on parameters in one query.
const maxQueryParams = 10000

func reencode(q string) string {
	v, _ := url.ParseQuery(q)
	return v.Encode()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
