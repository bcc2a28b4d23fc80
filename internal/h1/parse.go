package h1

import (
	"bytes"
	"strings"

	"github.com/tbsphathuynh/proxy/internal/httpsyntax"
)

// verdict is what the parser makes of the bytes read so far.
type verdict int

const (
	// needMore: the head is not complete yet and nothing seen so far rules
	// the fast path out.
	needMore verdict = iota
	// accept: a complete head that the fast path serves exactly as
	// net/http would.
	accept
	// handOff: something the fast path does not serve itself (a framing it
	// leaves to net/http, an upgrade, an error net/http answers); the
	// connection goes to net/http with every byte read so far.
	handOff
	// reject: a head whose framing is faulty in a way net/http would not
	// see (an HTTP/1.0 request with Transfer-Encoding): the fast path
	// answers 400 and closes, and no handler sees it.
	reject
)

// maxFields is the most header lines the fast path takes; a request with
// more goes to net/http.
const maxFields = 64

// span is a range of the read buffer.
type span struct{ off, end int32 }

// head is a request head parsed in place: spans into the buffer it was read
// into, plus what the framing and connection handling need.
type head struct {
	method, target span
	fields         [maxFields]struct{ name, value span }
	nfields        int
	// contentLength is the request body's length, 0 when there is none.
	contentLength int64
	// close is set when the client sent Connection: close (Request.Close).
	close bool
	// wantsClose: the first Connection holds close as net/http's server
	// also looks for it, between spaces as well as commas.
	wantsClose bool
	// noCache: the first Pragma is no-cache and no Cache-Control was sent;
	// net/http then adds Cache-Control: no-cache to the request.
	noCache bool
}

// parseHead parses the request head at the start of b. On accept it
// returns the head's length, CRLF CRLF included.
//
// It accepts a strict subset of what net/http accepts, and frames a body
// the same way: HTTP/1.1 only, origin-form targets of printable ASCII,
// CRLF line ends, no folded lines, exactly one valid Host, at most one
// Content-Length of plain digits, and no Transfer-Encoding, Expect,
// Upgrade or HTTP2-Settings. Anything else is handed to net/http, which
// serves it or answers the error itself. FuzzParseHead checks the subset
// against net/http's parser.
func parseHead(b []byte, h *head) (int, verdict) {
	h.nfields = 0
	h.contentLength = 0
	h.close = false
	h.wantsClose = false
	h.noCache = false

	i := 0
	for i < len(b) && httpsyntax.IsTchar(b[i]) {
		i++
	}
	if i == len(b) {
		return 0, needMore
	}
	if i == 0 || b[i] != ' ' {
		return 0, handOff
	}
	h.method = span{0, int32(i)}
	i++
	start := i
	for i < len(b) && b[i] > ' ' && b[i] < 0x7f {
		i++
	}
	if i == len(b) {
		return 0, needMore
	}
	if b[i] != ' ' || i == start || b[start] != '/' {
		return 0, handOff
	}
	h.target = span{int32(start), int32(i)}
	i++
	const version = "HTTP/1.1\r\n"
	if rest := b[i:]; len(rest) < len(version) {
		if !strings.HasPrefix(version, string(rest)) {
			return 0, handOff
		}
		return 0, needMore
	}
	if string(b[i:i+len(version)]) != version {
		return 0, handOff
	}
	i += len(version)

	hosts, lengths, connections := 0, 0, 0
	pragma, cacheControl := false, false
	for {
		if i >= len(b) {
			return 0, needMore
		}
		if b[i] == '\r' {
			if i+1 == len(b) {
				return 0, needMore
			}
			if b[i+1] != '\n' {
				return 0, handOff
			}
			i += 2
			break
		}
		ns := i
		for i < len(b) && httpsyntax.IsTchar(b[i]) {
			i++
		}
		if i == len(b) {
			return 0, needMore
		}
		// A line starting with a space (obs-fold), a bare LF, a space
		// before the colon: net/http's to judge.
		if i == ns || b[i] != ':' {
			return 0, handOff
		}
		ne := i
		i++
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		vs := i
		for i < len(b) && (b[i] == '\t' || b[i] >= ' ' && b[i] != 0x7f) {
			i++
		}
		if i == len(b) {
			return 0, needMore
		}
		if b[i] != '\r' {
			return 0, handOff
		}
		if i+1 == len(b) {
			return 0, needMore
		}
		if b[i+1] != '\n' {
			return 0, handOff
		}
		ve := i
		for ve > vs && (b[ve-1] == ' ' || b[ve-1] == '\t') {
			ve--
		}
		i += 2

		if h.nfields == maxFields {
			return 0, handOff
		}
		name, value := b[ns:ne], b[vs:ve]
		switch fieldKind(name) {
		case fieldHost:
			hosts++
			if !validHost(value) {
				return 0, handOff
			}
		case fieldContentLength:
			lengths++
			n, ok := parseLength(value)
			if !ok {
				return 0, handOff
			}
			h.contentLength = n
		case fieldConnection:
			if httpsyntax.HasToken(value, "close") {
				h.close = true
			}
			if connections++; connections == 1 {
				h.wantsClose = containsToken(value, "close")
			}
		case fieldPragma:
			if !pragma {
				pragma = true
				h.noCache = string(value) == "no-cache"
			}
		case fieldCacheControl:
			cacheControl = true
		case fieldRefused:
			return 0, handOff
		}
		h.fields[h.nfields].name = span{int32(ns), int32(ne)}
		h.fields[h.nfields].value = span{int32(vs), int32(ve)}
		h.nfields++
	}
	if hosts != 1 || lengths > 1 {
		return 0, handOff
	}
	if cacheControl {
		h.noCache = false
	}
	return i, accept
}

// checkHandOff looks at the head at the start of b, which parseHead hands
// to net/http, for what net/http would serve though it must not: an
// HTTP/1.0 request with Transfer-Encoding. net/http ignores the field on
// such a request and frames the body by Content-Length alone, where a
// server or proxy in front that honours it reads the rest as another
// request; RFC 9112 §6.1 calls that framing faulty, and the fast path
// refuses the request, as nginx does. It reports reject as soon as a
// complete Transfer-Encoding line has come, handOff at the end of a head
// without one or for any other version, and needMore before that. Lines
// are split as net/http's reader splits them, at LF with an optional CR
// before it.
func checkHandOff(b []byte) verdict {
	end := bytes.IndexByte(b, '\n')
	if end < 0 {
		return needMore
	}
	line := bytes.TrimSuffix(b[:end], []byte{'\r'})
	if !bytes.HasSuffix(line, []byte(" HTTP/1.0")) {
		return handOff
	}
	b = b[end+1:]
	for {
		end := bytes.IndexByte(b, '\n')
		if end < 0 {
			return needMore
		}
		line := bytes.TrimSuffix(b[:end], []byte{'\r'})
		if len(line) == 0 {
			return handOff
		}
		if name, _, ok := bytes.Cut(line, []byte{':'}); ok && httpsyntax.EqualFold(name, "transfer-encoding") {
			return reject
		}
		b = b[end+1:]
	}
}

// The fields the parser acts on.
const (
	fieldOther = iota
	fieldHost
	fieldContentLength
	fieldConnection
	fieldPragma
	fieldCacheControl
	// fieldRefused: Transfer-Encoding, Expect, Upgrade, HTTP2-Settings,
	// which only net/http serves.
	fieldRefused
)

// fieldKind classifies a field name, by length first so that most names
// are told apart without comparing bytes.
func fieldKind(name []byte) int {
	switch len(name) {
	case 4:
		if httpsyntax.EqualFold(name, "host") {
			return fieldHost
		}
	case 6:
		if httpsyntax.EqualFold(name, "pragma") {
			return fieldPragma
		}
		if httpsyntax.EqualFold(name, "expect") {
			return fieldRefused
		}
	case 7:
		if httpsyntax.EqualFold(name, "upgrade") {
			return fieldRefused
		}
	case 10:
		if httpsyntax.EqualFold(name, "connection") {
			return fieldConnection
		}
	case 13:
		if httpsyntax.EqualFold(name, "cache-control") {
			return fieldCacheControl
		}
	case 14:
		if httpsyntax.EqualFold(name, "content-length") {
			return fieldContentLength
		}
		if httpsyntax.EqualFold(name, "http2-settings") {
			return fieldRefused
		}
	case 17:
		if httpsyntax.EqualFold(name, "transfer-encoding") {
			return fieldRefused
		}
	}
	return fieldOther
}

// validHost accepts the usual host[:port] and [v6]:port spellings, a
// subset of what net/http takes.
func validHost(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == '_', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length of plain digits, short enough never
// to overflow.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// canonicalize rewrites a field name in place as net/http keys it: upper
// case at the start and after each hyphen, lower case elsewhere.
func canonicalize(name []byte) {
	upper := true
	for i, c := range name {
		if upper && 'a' <= c && c <= 'z' {
			name[i] = c - 'a' + 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			name[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
}
