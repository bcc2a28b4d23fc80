package forward

import (
	"bufio"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"

	"github.com/tbsphathuynh/proxy/internal/httpsyntax"
)

// stackHeadKeys is how many header keys writeRequestHead sorts in an array
// on its stack, enough for most requests; more take an allocation. The
// array is zeroed on every call, so it is kept small.
const stackHeadKeys = 20

// defaultUserAgent is what Request.Write sends when the header has no
// User-Agent key.
const defaultUserAgent = "Go-http-client/1.1"

// headKV is a header key with its values, as Request.Write sorts them.
type headKV struct {
	key  string
	vals []string
}

// writeRequestHead writes to bw the head that req.Write would write for req,
// a request without a body (see handles), byte for byte. Request.Write
// builds a transfer writer, formats with fmt and sorts the header through
// a pool for every request; this costs no allocation in the plain case
// (when the head fits in what bw has left of its buffer, as it does in a
// fresh writer of the pool unless the head is over 4 KiB).
//
// It reports false, having written nothing, when req is outside the plain
// case: a body or a framing of its own, a host that needs IDNA, or a client
// trace that wants to see the fields written. The caller then uses req.Write, which also reports the errors
// (a control byte in the target) that this declines.
func writeRequestHead(bw *bufio.Writer, req *http.Request) bool {
	b, ok := appendRequestHead(bw.AvailableBuffer(), req)
	if ok {
		bw.Write(b)
	}
	return ok
}

// appendRequestHead appends to b the head writeRequestHead writes, and
// reports whether req is in its plain case.
func appendRequestHead(b []byte, req *http.Request) ([]byte, bool) {
	if req.URL == nil || req.Close || req.ContentLength != 0 ||
		len(req.TransferEncoding) != 0 || req.Method == http.MethodConnect ||
		(req.Body != nil && req.Body != http.NoBody) {
		return b, false
	}
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil &&
		(trace.WroteHeaderField != nil || trace.WroteHeaders != nil || trace.WroteRequest != nil) {
		return b, false
	}

	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	// Request.Write sends an empty Host rather than one that could split
	// the header, and strips an IPv6 zone (RFC 6874). Beyond ASCII it
	// converts to punycode, which is left to it.
	for i := 0; i < len(host); i++ {
		if host[i] >= utf8.RuneSelf {
			return b, false
		}
	}
	for i := 0; i < len(host); i++ {
		if !validHostByte[host[i]] {
			host = ""
			break
		}
	}
	host, zoneEnd := splitZone(host)

	// The target, as URL.RequestURI gives it, without its allocations
	// when the path needs no escaping.
	path, query, hasQuery := "", "", false
	if u := req.URL; u.Opaque == "" && u.RawPath == "" && httpsyntax.PlainPath(u.Path) {
		path, query = u.Path, u.RawQuery
		if path == "" {
			path = "/"
		}
		hasQuery = u.ForceQuery || query != ""
	} else {
		path = u.RequestURI()
	}
	if hasCTL(path) || hasCTL(query) {
		return b, false
	}

	var arr [stackHeadKeys]headKV
	kvs := arr[:0]
	if len(req.Header) > len(arr) {
		kvs = make([]headKV, 0, len(req.Header))
	}
	for k, vv := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		kvs = append(kvs, headKV{k, vv})
	}
	slices.SortFunc(kvs, func(a, b headKV) int { return strings.Compare(a.key, b.key) })

	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, path...)
	if hasQuery {
		b = append(b, '?')
		b = append(b, query...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, zoneEnd...)
	b = append(b, "\r\n"...)

	// A User-Agent key with no value, or an empty one, asks for none.
	ua := defaultUserAgent
	if vv, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(vv) > 0 {
			ua = vv[0]
		}
	}
	if ua != "" {
		b = append(b, "User-Agent: "...)
		b = httpsyntax.AppendFieldValue(b, ua)
		b = append(b, "\r\n"...)
	}
	// Servers expect a length on these methods even with no body
	// (transferWriter.shouldSendContentLength).
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		b = append(b, "Content-Length: 0\r\n"...)
	}

	for _, kv := range kvs {
		if !httpguts.ValidHeaderFieldName(kv.key) {
			continue // as Header.Write drops it
		}
		for _, v := range kv.vals {
			b = append(b, kv.key...)
			b = append(b, ": "...)
			b = httpsyntax.AppendFieldValue(b, v)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...), true
}

// splitZone returns host without the IPv6 zone Request.Write removes, as
// the part before the zone and the part after it, so that no new string is
// made.
func splitZone(host string) (before, after string) {
	if !strings.HasPrefix(host, "[") {
		return host, ""
	}
	i := strings.LastIndex(host, "]")
	if i < 0 {
		return host, ""
	}
	j := strings.LastIndex(host[:i], "%")
	if j < 0 {
		return host, ""
	}
	return host[:j], host[i:]
}

// hasCTL reports whether s has a byte Request.Write refuses in a target.
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// byteSet makes a table of the bytes of s.
func byteSet(s string) (t [256]bool) {
	for i := 0; i < len(s); i++ {
		t[s[i]] = true
	}
	return t
}

const (
	alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

var (
	// validHostByte: the bytes httpguts.ValidHostHeader accepts.
	validHostByte = byteSet(alnum + "!$%&'()*+,-.:;=[]_~")
)
