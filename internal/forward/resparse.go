package forward

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/tbsphathuynh/proxy/internal/httpsyntax"
)

// maxRespFields is the most header lines parseResponseHead takes; a
// response with more goes to http.ReadResponse.
const maxRespFields = 64

// stackRespFields is how many fields parseResponseHead keeps on its stack.
const stackRespFields = 16

// inlineValues is how many header values a fastResponse holds in place;
// a response with more gets an array of its own for them.
const inlineValues = 8

// readResponse reads a response head from br as http.ReadResponse(br, req)
// does, with the same result, except that a final answer that closes its
// connection comes without the fields its Connection field named, which
// net/http leaves in (see connection.go). A head that is whole in br's
// buffer and in parseResponseHead's common case is parsed in place, in a
// few allocations instead of one per header value; anything else is left
// to http.ReadResponse, with br untouched. tap, if not nil, sees what br
// reads from the connection (pconn.Read), which lets a head that was not
// whole in the buffer be found again.
func readResponse(br *bufio.Reader, req *http.Request, fr *fastResponse, tap *headTap) (*http.Response, error) {
	if _, err := br.Peek(1); err != nil {
		// bufio hands a read error out once: http.ReadResponse called now
		// would read the connection again rather than see it. This is the
		// error it would have returned.
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	p, _ := br.Peek(br.Buffered())
	if res, n := parseResponseHead(p, br, req, fr); res != nil {
		br.Discard(n)
		return res, nil
	}
	if tap == nil {
		return http.ReadResponse(br, req)
	}
	whole := tap.start(p)
	res, err := http.ReadResponse(br, req)
	tap.on = false
	if err == nil && lostConnection(res) {
		// What ReadResponse consumed is the head, from p's start.
		if head := tap.head(p, whole, len(p)+tap.n-br.Buffered()); head != nil {
			dropNamed(res.Header, connectionValues(head))
		}
	}
	tap.buf = nil
	return res, err
}

// headTap keeps the bytes a reader under a bufio.Reader reads while
// http.ReadResponse reads a head that was not whole in the buffer: the
// buffer moves its bytes when it reads more, and the start of the head
// would be lost.
type headTap struct {
	on  bool
	n   int    // bytes read while on
	buf []byte // the start of the head, at most maxHeadCopy bytes
}

// start turns t on before a head is read from a buffer holding p, and
// reports the head's length when p holds it whole, or -1. Only a head
// that is not whole is copied; that is rare, and the copy is dropped
// once the head is read.
func (t *headTap) start(p []byte) (whole int) {
	whole, _ = headEnd(p)
	if whole < 0 {
		t.buf = append(make([]byte, 0, maxHeadCopy), p[:min(len(p), maxHeadCopy)]...)
	}
	t.on, t.n = true, 0
	return whole
}

// record keeps p, just read.
func (t *headTap) record(p []byte) {
	t.n += len(p)
	if t.buf != nil {
		t.buf = append(t.buf, p[:min(len(p), cap(t.buf)-len(t.buf))]...)
	}
}

// head returns the head ReadResponse consumed, n bytes, when what start
// and record kept shows it whole: in p itself, untouched since nothing
// was read (whole is its length), or in the copy; else nil.
func (t *headTap) head(p []byte, whole, n int) []byte {
	b := p
	if whole < 0 {
		b = t.buf
	} else if t.n > 0 {
		return nil
	}
	if n <= 0 || n > len(b) {
		return nil
	}
	if end, _ := headEnd(b[:n]); end != n {
		return nil
	}
	return b[:n]
}

// fastResponse is a response parsed by parseResponseHead with its body and
// header values, allocated together.
type fastResponse struct {
	res  http.Response
	body respBody
	vals [inlineValues]string

	// The head with its names canonical and its fields, as the direct
	// lane relays them (see appendRawLines), when hasRaw: they fit.
	hasRaw   bool
	head     string
	fields   [stackRespFields]field
	nfields  int
	noCache  bool // the Cache-Control: no-cache that Pragma: no-cache implies
	hasClose bool // a Connection: close, which the header map leaves out
	// lazy: the caller reads the header only through header, so a head
	// that fits the fields and comes with a body gets no map until then
	// (the direct lane's relay reads the fields instead).
	lazy bool
}

// header is the response's header map, made from the fields if parsing
// left it for later (see lazy).
func (fr *fastResponse) header() http.Header {
	if fr.res.Header == nil {
		fr.res.Header = buildHeader(fr.head, fr.fields[:fr.nfields], fr.vals[:], fr.noCache, fr.hasClose)
	}
	return fr.res.Header
}

// buildHeader makes the header map of a head s with fields, as
// http.ReadResponse has it: values in vals where they fit, the
// Cache-Control Pragma: no-cache implies (noCache), no Connection when it
// said close; but then, unlike ReadResponse, without the fields it named
// either (RFC 9110 §7.6.1, see connection.go).
func buildHeader(s string, fields []field, vals []string, noCache, hasClose bool) http.Header {
	nf := len(fields)
	if nf > len(vals) {
		vals = make([]string, nf)
	}
	var h http.Header
	if nf <= pooledHeaderKeys {
		h = responseHeaders.Get().(http.Header)
	} else {
		h = make(http.Header, nf)
	}
	for j, f := range fields {
		k, v := s[f.k0:f.k1], s[f.v0:f.v1]
		if vv, ok := h[k]; ok {
			h[k] = append(vv, v)
			continue
		}
		vals[j] = v
		h[k] = vals[j : j+1 : j+1]
	}
	if noCache {
		h["Cache-Control"] = []string{"no-cache"}
	}
	if hasClose {
		dropNamed(h, h["Connection"])
		delete(h, "Connection")
	}
	return h
}

// responseHeaders are header maps for responses parsed in place, reused
// once relayed (see recycle); a map of up to pooledHeaderKeys keys
// fits in one group of Go's maps.
var responseHeaders = sync.Pool{New: func() any { return make(http.Header, pooledHeaderKeys) }}

const pooledHeaderKeys = 8

// field is a header line of the head parseResponseHead parses: the name
// is [k0, k1), the value trimmed is [v0, v1).
type field struct {
	k0, k1, v0, v1 int32
	canonical      bool // the name is already in canonical form
}

// parseResponseHead parses the response head at the start of p, the
// buffered bytes of br, and returns the response http.ReadResponse(br, req)
// would return, with its body reading from br, and the length of the head.
// It returns nil when the head is not whole in p or is outside the common
// case it takes:
//
//   - an HTTP/1.1 status line with a final status from 200 to 599 (204
//     and 304 without a body, as net/http frames them) and a reason of
//     the bytes a field value may hold;
//   - CRLF line ends; field names that are tokens, directly followed by the
//     colon; field values of the bytes net/textproto accepts; no folded
//     lines;
//   - no Transfer-Encoding, at most one Content-Length, of at most 18
//     digits;
//   - not an answer to HEAD.
//
// Anything else, malformed or merely unusual, is for http.ReadResponse to
// read or refuse. Within the common case it mirrors ReadResponse: names
// canonicalized, values trimmed, Connection dropped when it says close
// (with the fields it names, which ReadResponse keeps: see buildHeader),
// Pragma: no-cache implying Cache-Control, and the body framed by its length
// or, without one, by the end of the connection. FuzzResponseHead checks
// it against http.ReadResponse.
func parseResponseHead(p []byte, br *bufio.Reader, req *http.Request, fr *fastResponse) (*http.Response, int) {
	if req != nil && req.Method == http.MethodHead {
		return nil, 0
	}
	const proto = "HTTP/1.1 "
	if len(p) < len(proto)+3 || string(p[:len(proto)]) != proto {
		return nil, 0
	}
	d0, d1, d2 := p[9], p[10], p[11]
	if d0 < '2' || d0 > '5' || !isDigit(d1) || !isDigit(d2) {
		return nil, 0
	}
	code := int(d0-'0')*100 + int(d1-'0')*10 + int(d2-'0')
	i := 12
	if i < len(p) && p[i] == ' ' {
		for i < len(p) && httpsyntax.ValidValueByte(p[i]) {
			i++
		}
	}
	statusEnd := i
	if !crlf(p, i) {
		return nil, 0
	}
	i += 2

	// Most heads fit the array on the stack, which is zeroed on every
	// call, so it is kept small; a longer head moves to the heap.
	var arr [stackRespFields]field
	fields := arr[:0]
	clField := -1
	var cl int64
	hasClose, sawPragma, noCache, hasCacheControl := false, false, false, false
	for {
		if i >= len(p) {
			return nil, 0
		}
		if p[i] == '\r' {
			if !crlf(p, i) {
				return nil, 0
			}
			i += 2
			break
		}
		if len(fields) == maxRespFields {
			return nil, 0
		}
		f := field{k0: int32(i), canonical: true}
		upper := true
		for i < len(p) && httpsyntax.IsTchar(p[i]) {
			c := p[i]
			if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
				f.canonical = false
			}
			upper = c == '-'
			i++
		}
		if i == int(f.k0) || i >= len(p) || p[i] != ':' {
			return nil, 0
		}
		f.k1 = int32(i)
		i++
		for i < len(p) && (p[i] == ' ' || p[i] == '\t') {
			i++
		}
		f.v0 = int32(i)
		for i < len(p) && httpsyntax.ValidValueByte(p[i]) {
			i++
		}
		if !crlf(p, i) {
			return nil, 0
		}
		v1 := i
		for v1 > int(f.v0) && (p[v1-1] == ' ' || p[v1-1] == '\t') {
			v1--
		}
		f.v1 = int32(v1)
		i += 2

		name, value := p[f.k0:f.k1], p[f.v0:f.v1]
		switch {
		case httpsyntax.EqualFold(name, "Content-Length"):
			if clField >= 0 || len(value) == 0 || len(value) > 18 {
				return nil, 0
			}
			cl = 0
			for _, c := range value {
				if !isDigit(c) {
					return nil, 0
				}
				cl = cl*10 + int64(c-'0')
			}
			clField = len(fields)
		case httpsyntax.EqualFold(name, "Transfer-Encoding"):
			return nil, 0
		case httpsyntax.EqualFold(name, "Connection"):
			hasClose = hasClose || httpsyntax.HasToken(value, "close")
		case httpsyntax.EqualFold(name, "Pragma"):
			// fixPragmaCacheControl looks at the first Pragma only.
			if !sawPragma {
				sawPragma = true
				noCache = string(value) == "no-cache"
			}
		case httpsyntax.EqualFold(name, "Cache-Control"):
			hasCacheControl = true
		}
		fields = append(fields, f)
	}
	n := i

	// One copy of the head, names canonicalized in it, for all the
	// header's strings to share.
	var sb strings.Builder
	sb.Grow(n)
	last := 0
	for _, f := range fields {
		if f.canonical {
			continue
		}
		sb.Write(p[last:f.k0])
		upper := true
		for _, c := range p[f.k0:f.k1] {
			if upper && 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			} else if !upper && 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			sb.WriteByte(c)
			upper = c == '-'
		}
		last = int(f.k1)
	}
	sb.Write(p[last:n])
	s := sb.String()

	if fr == nil {
		fr = new(fastResponse)
	}
	noCache = noCache && !hasCacheControl
	hasBody := code != http.StatusNoContent && code != http.StatusNotModified && (clField < 0 || cl > 0)
	var h http.Header
	if len(fields) <= stackRespFields {
		fr.hasRaw, fr.head, fr.nfields, fr.noCache, fr.hasClose = true, s, len(fields), noCache, hasClose
		copy(fr.fields[:], fields)
	}
	if !fr.lazy || !fr.hasRaw || !hasBody {
		h = buildHeader(s, fields, fr.vals[:], noCache, hasClose)
	}

	res := &fr.res
	*res = http.Response{
		Status:     s[len(proto):statusEnd],
		StatusCode: code,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Close:      hasClose,
		Request:    req,
	}
	switch {
	case code == http.StatusNoContent || code == http.StatusNotModified:
		// No body whatever the length says; the length is still checked,
		// above, as net/http does.
		res.Body = http.NoBody
	case clField < 0:
		// Without a length the body runs to the end of the connection.
		res.ContentLength = -1
		res.Close = true
		fr.body = respBody{br: br, n: -1, closing: true}
		res.Body = &fr.body
	case cl == 0:
		res.Body = http.NoBody
	default:
		res.ContentLength = cl
		fr.body = respBody{br: br, n: cl, closing: res.Close}
		res.Body = &fr.body
	}
	return res, n
}

// respBody is the body of a response parseResponseHead parsed: n bytes of
// br, or all of it to its end when n is -1. It reads as net/http's body
// does: the last bytes come with io.EOF, a connection that ends before n
// bytes is io.ErrUnexpectedEOF, and Close before the end reads the rest
// unless the connection is to be closed. Unlike net/http's it has no
// lock: the client's body wrapper, its only reader, is not for concurrent
// use either, and a rescue reads it only once that wrapper is closed.
type respBody struct {
	br      *bufio.Reader
	n       int64
	closing bool // the connection is closed after the body
	sawEOF  bool
	closed  bool
}

func (b *respBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.sawEOF {
		return 0, io.EOF
	}
	if b.n < 0 {
		n, err := b.br.Read(p)
		if err == io.EOF {
			b.sawEOF = true
		}
		return n, err
	}
	if b.n == 0 {
		b.sawEOF = true
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.br.Read(p)
	b.n -= int64(n)
	if err == io.EOF {
		b.sawEOF = true
		if b.n > 0 {
			err = io.ErrUnexpectedEOF
		}
	}
	if err == nil && n > 0 && b.n == 0 {
		err = io.EOF
		b.sawEOF = true
	}
	return n, err
}

func (b *respBody) Close() error {
	if b.closed {
		return nil
	}
	var err error
	if !b.sawEOF && !b.closing {
		// As net/http's body: the connection may serve another exchange,
		// so the rest of this one is read off it.
		_, err = io.Copy(io.Discard, b)
	}
	b.closed = true
	return err
}

// crlf reports whether p has CR LF at i.
func crlf(p []byte, i int) bool {
	return i+1 < len(p) && p[i] == '\r' && p[i+1] == '\n'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
