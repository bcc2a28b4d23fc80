package h1

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/tbsphathuynh/proxy/internal/httpsyntax"
)

// bufferBeforeChunking is the size of the buffer the body passes through,
// as net/http's bufferBeforeChunkingSize. A response that ends within it
// is sent with a Content-Length, a longer one chunked; and since each
// chunk is what this buffer lets through, it is filled and emptied exactly
// as net/http's bufio.Writer is, so the chunks (and the bytes a sniffed
// Content-Type is decided on) are the same as net/http's.
const bufferBeforeChunking = 2048

// flushAt is how much response is gathered before it is written out, as
// net/http's 4 KiB connection buffer.
const flushAt = 4096

// sniffLen is how much body ReadFrom copies through the buffer before it
// hands the rest to the connection's own ReadFrom, as net/http does: it is
// what http.DetectContentType looks at.
const sniffLen = 512

// copyBuffers are ReadFrom's, of net/http's size: the size of each read
// from the source makes the size of each chunk.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// The header lines commit may leave out, in sorted order: their places in
// response.head.
const (
	lineConnection = iota
	lineContentLength
	lineContentType
	lineTransferEncoding
	numLines
)

// lineSpan is where a key's lines are in response.head.
type lineSpan struct{ off, end int }

// response is the http.ResponseWriter of the fast path. It follows
// net/http's response rules (see chunkWriter.writeHeader there): the
// header is captured at WriteHeader, Content-Length is set for a response
// that ends within bufferBeforeChunking bytes and chunking used otherwise,
// Content-Type sniffed when missing, Date added, trailers sent after a
// chunked body, Connection: close when the connection will close, no body
// for HEAD, 1xx, 204 and 304.
type response struct {
	c      *conn
	st     *reqState
	header http.Header

	status      int
	wroteHeader bool
	committed   bool
	handlerDone bool
	chunking    bool
	closeAfter  bool
	isHEAD      bool
	// wantsClose: the request asked for the connection to close.
	wantsClose bool
	// linger: the connection closes with request body bytes unread, and
	// waits after its FIN before it closes (see closeWriteAndWait).
	linger bool

	// contentLength is the declared length, -1 when none; written counts
	// the body bytes the handler wrote.
	contentLength int64
	written       int64

	// What commit decides on, from the header captured at WriteHeader.
	te, connection         string
	hasLength, hasType     bool
	hasCE, hasDate         bool
	hasTrailers, protoSwap bool
	trailers               []string

	// raw are header lines a relay set for the next WriteHeader of
	// status rawCode, with what commit needs to know of them (see
	// SetRawHeader).
	raw                     []byte
	rawCode                 int
	rawLen                  int64
	rawType, rawCE, rawDate bool

	head    []byte // status line and captured header lines
	lines   [numLines]lineSpan
	pending []byte // the body buffer (bufferBeforeChunking)
	out     []byte // bytes to write to the connection
	keys    []string
	kvs     []headerKV
	vec     net.Buffers
	werr    error
}

func (w *response) reset(c *conn, isHEAD bool, st *reqState) {
	w.c, w.st = c, st
	w.contentLength = -1
	w.isHEAD = isHEAD
	w.wantsClose = st.head.close || st.head.wantsClose
}

// clean readies w for the pool, keeping its buffers.
func (w *response) clean() {
	*w = response{
		header:   w.header,
		head:     w.head[:0],
		pending:  w.pending[:0],
		out:      w.out[:0],
		keys:     w.keys[:0],
		kvs:      w.kvs[:0],
		trailers: w.trailers[:0],
	}
}

// Header implements http.ResponseWriter.
func (w *response) Header() http.Header { return w.header }

// WriteHeader implements http.ResponseWriter.
func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		caller := relevantCaller()
		w.c.srv.logf("h1: superfluous response.WriteHeader call from %s (%s:%d)", caller.Function, path.Base(caller.File), caller.Line)
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.informational(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	w.capture()
	if cl := w.header["Content-Length"]; len(cl) > 0 && cl[0] != "" {
		v, err := strconv.ParseInt(cl[0], 10, 64)
		if err == nil && v >= 0 {
			w.contentLength = v
		} else {
			// Gone from the handler's header, but not from the captured
			// one, as in net/http: the response is then chunked.
			w.c.srv.logf("h1: invalid Content-Length of %q", cl[0])
			w.header.Del("Content-Length")
		}
	}
}

// responseMethods prefixes the names of the response's methods in stack
// frames.
var responseMethods = reflect.TypeFor[response]().PkgPath() + ".(*response)."

// relevantCaller is the first caller outside net/http and the response's
// methods, for the log of a misuse, as net/http finds it.
func relevantCaller() runtime.Frame {
	pc := make([]uintptr, 16)
	n := runtime.Callers(2, pc)
	frames := runtime.CallersFrames(pc[:n])
	for {
		f, more := frames.Next()
		if !more || !strings.HasPrefix(f.Function, "net/http.") && !strings.HasPrefix(f.Function, responseMethods) {
			return f
		}
	}
}

// informational sends a 1xx answer at once, with the handler's header
// minus the framing headers.
func (w *response) informational(code int) {
	b := appendStatusLine(w.out, code)
	b = w.appendHeader(b)
	b = append(b, "\r\n"...)
	w.out = b
	w.flush()
}

// capture records the header as net/http snapshots it at WriteHeader:
// that snapshot is what is sent and decided on (trailers aside), and later
// changes are not. Its lines are written to head now, noting where the
// lines are that commit may leave out.
func (w *response) capture() {
	// One pass over the map notes the keys decisions depend on (exact
	// keys, as net/http looks them up) and gathers the lines to write.
	kvs := w.kvs[:0]
	var conn, trailer []string
	upgrade := false
	for k, vv := range w.header {
		line := -1
		switch k {
		case "Content-Length":
			w.hasLength, line = true, lineContentLength
		case "Transfer-Encoding":
			w.te, line = first(vv), lineTransferEncoding
		case "Connection":
			conn, line = vv, lineConnection
		case "Content-Type":
			w.hasType, line = true, lineContentType
		case "Content-Encoding":
			w.hasCE = first(vv) != ""
		case "Date":
			w.hasDate = true
		case "Upgrade":
			upgrade = first(vv) != ""
		case "Trailer":
			trailer = vv
		default:
			if strings.HasPrefix(k, http.TrailerPrefix) {
				w.hasTrailers = true
			}
		}
		kvs = append(kvs, headerKV{k, vv, line})
	}
	w.connection = first(conn)
	w.protoSwap = w.status == http.StatusSwitchingProtocols && upgrade &&
		httpguts.HeaderValuesContainsToken(conn, "Upgrade")
	for _, v := range trailer {
		w.hasTrailers = true
		foreachElement(v, func(name string) {
			name = http.CanonicalHeaderKey(name)
			if httpguts.ValidTrailerHeader(name) {
				w.trailers = append(w.trailers, name)
			}
		})
	}
	w.head = appendStatusLine(w.head[:0], w.status)
	w.head = w.appendLines(w.head, kvs)
	clear(kvs)
	w.kvs = kvs[:0]
	if w.raw != nil {
		if w.rawCode == w.status {
			w.head = append(w.head, w.raw...)
			w.hasType = w.hasType || w.rawType
			w.hasCE = w.hasCE || w.rawCE
			w.hasDate = w.hasDate || w.rawDate
			if w.rawLen >= 0 {
				w.hasLength, w.contentLength = true, w.rawLen
			}
		}
		w.raw = nil
	}
}

// SetRawHeader is for a proxy relaying a response: lines, header lines
// each ending in CRLF, are written as they are after the lines of the
// handler's header by the next WriteHeader, when its code is code; they
// are not in Header. length is the value of their Content-Length line, or
// -1 when they have none; typ, encoding and date say whether they have a
// Content-Type, a non-empty Content-Encoding and a Date line. They must
// hold no hop-by-hop line (Connection, Transfer-Encoding, Trailer and
// the like). lines must not change until WriteHeader returns.
//
// It reports false, and sets nothing, where the lines could need changes
// that only a header map allows: for a code whose answer has no body
// (1xx, 204, 304), after WriteHeader, or when Header already holds
// Content-Length, Transfer-Encoding, Connection or Trailer.
func (w *response) SetRawHeader(code int, lines []byte, length int64, typ, encoding, date bool) bool {
	if w.wroteHeader || code < 200 || code > 999 || code == http.StatusNoContent || code == http.StatusNotModified {
		return false
	}
	for _, k := range []string{"Content-Length", "Transfer-Encoding", "Connection", "Trailer"} {
		if _, ok := w.header[k]; ok {
			return false
		}
	}
	w.raw, w.rawCode, w.rawLen = lines, code, length
	w.rawType, w.rawCE, w.rawDate = typ, encoding, date
	return true
}

func first(vv []string) string {
	if len(vv) == 0 {
		return ""
	}
	return vv[0]
}

// headerKV is one key of a header map with its values, and which of the
// lines commit may leave out they are (-1: none).
type headerKV struct {
	key  string
	vals []string
	line int
}

// appendHeader appends the lines of the handler's header as an
// informational answer carries them: without the framing keys.
func (w *response) appendHeader(b []byte) []byte {
	kvs := w.kvs[:0]
	for k, vv := range w.header {
		if k == "Content-Length" || k == "Transfer-Encoding" {
			continue
		}
		kvs = append(kvs, headerKV{k, vv, -1})
	}
	b = w.appendLines(b, kvs)
	clear(kvs)
	w.kvs = kvs[:0]
	return b
}

// appendLines appends the header lines of kvs sorted by key, as net/http
// writes them, skipping invalid keys, and notes where the lines commit may
// leave out are.
func (w *response) appendLines(b []byte, kvs []headerKV) []byte {
	slices.SortFunc(kvs, func(a, b headerKV) int { return strings.Compare(a.key, b.key) })
	for _, kv := range kvs {
		if !httpguts.ValidHeaderFieldName(kv.key) {
			continue
		}
		start := len(b)
		for _, v := range kv.vals {
			b = appendField(b, kv.key, v)
		}
		if kv.line >= 0 {
			w.lines[kv.line] = lineSpan{start, len(b)}
		}
	}
	return b
}

// appendField appends one header line, with the value trimmed and any CR
// or LF in it turned into a space, as net/http writes it.
func appendField(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = httpsyntax.AppendFieldValue(b, v)
	return append(b, "\r\n"...)
}

// Write implements http.ResponseWriter.
func (w *response) Write(p []byte) (int, error) { return w.write(len(p), p, "") }

// WriteString implements io.StringWriter. Unlike Write, it never sends a
// long string in one chunk: net/http's buffer copies a string through
// itself, so the chunks are at most bufferBeforeChunking long.
func (w *response) WriteString(s string) (int, error) { return w.write(len(s), nil, s) }

// write is Write with p, WriteString with s.
func (w *response) write(n int, p []byte, s string) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if n == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(n)
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if p != nil {
		return w.buffer(p)
	}
	return w.bufferString(s)
}

// buffer passes p through the body buffer as bufio.Writer.Write does: a
// write that does not fit fills the buffer and sends it as one chunk, or
// when the buffer is empty is sent whole as one chunk.
func (w *response) buffer(p []byte) (nn int, err error) {
	for len(p) > bufferBeforeChunking-len(w.pending) && w.werr == nil {
		var n int
		if len(w.pending) == 0 {
			n = len(p)
			w.chunk(p)
		} else {
			n = bufferBeforeChunking - len(w.pending)
			w.pending = append(w.pending, p[:n]...)
			w.flushPending()
		}
		nn += n
		p = p[n:]
	}
	if w.werr != nil {
		return nn, w.werr
	}
	w.pending = append(w.pending, p...)
	return nn + len(p), nil
}

// bufferString passes s through the body buffer as bufio.Writer's
// WriteString does when the writer under it takes no strings: always
// through the buffer, a full buffer at a time.
func (w *response) bufferString(s string) (nn int, err error) {
	for len(s) > bufferBeforeChunking-len(w.pending) && w.werr == nil {
		n := bufferBeforeChunking - len(w.pending)
		w.pending = append(w.pending, s[:n]...)
		w.flushPending()
		nn += n
		s = s[n:]
	}
	if w.werr != nil {
		return nn, w.werr
	}
	w.pending = append(w.pending, s...)
	return nn + len(s), nil
}

// flushPending sends what the body buffer holds as one chunk.
func (w *response) flushPending() {
	if len(w.pending) == 0 {
		return
	}
	w.chunk(w.pending)
	w.pending = w.pending[:0]
}

// chunk sends p, a piece of body out of the body buffer: the head goes
// first if it has not, decided on with p as the start of the body.
func (w *response) chunk(p []byte) {
	if !w.committed {
		w.commit(p)
	}
	w.writeBody(p)
}

// writeBody sends p as body bytes, framed when chunking.
func (w *response) writeBody(p []byte) {
	if w.isHEAD || len(p) == 0 || w.werr != nil {
		return
	}
	if w.chunking {
		w.out = strconv.AppendInt(w.out, int64(len(p)), 16)
		w.out = append(w.out, "\r\n"...)
	}
	if len(w.out)+len(p) <= flushAt {
		w.out = append(w.out, p...)
		if w.chunking {
			w.out = append(w.out, "\r\n"...)
		}
		if len(w.out) >= flushAt {
			w.flush()
		}
		return
	}
	// Large: one vectored write of what is gathered and p.
	w.vec = append(w.vec[:0], w.out, p)
	if w.chunking {
		w.vec = append(w.vec, crlf)
	}
	w.out = w.out[:0]
	if _, err := w.vec.WriteTo(w.c.rwc); err != nil {
		w.fail(err)
	}
	w.vec = w.vec[:0]
}

var crlf = []byte("\r\n")

// writerOnly hides the ReadFrom of a writer, for io.CopyBuffer.
type writerOnly struct{ io.Writer }

// ReadFrom implements io.ReaderFrom as net/http's response does, for
// io.Copy: the first sniffLen bytes go through the body buffer, the head
// and those bytes are sent, and the rest is sent by the connection's own
// ReadFrom (sendfile, splice) when it need not be chunked, or through the
// buffer otherwise. The chunks are net/http's.
func (w *response) ReadFrom(src io.Reader) (n int64, err error) {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp

	rf, ok := w.c.rwc.(io.ReaderFrom)
	if !ok {
		return io.CopyBuffer(writerOnly{w}, src, buf)
	}
	if !w.committed {
		n0, err := io.CopyBuffer(writerOnly{w}, io.LimitReader(src, sniffLen), buf)
		n += n0
		if err != nil || n0 < sniffLen {
			return n, err
		}
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.flushPending()
	if !w.committed {
		w.commit(nil)
	}
	w.flush()

	if !w.chunking && bodyAllowedForStatus(w.status) && !w.isHEAD && w.werr == nil {
		n0, err := rf.ReadFrom(src)
		n += n0
		w.written += n0
		return n, err
	}
	n0, err := io.CopyBuffer(writerOnly{w}, src, buf)
	return n + n0, err
}

// Flush implements http.Flusher.
func (w *response) Flush() { w.FlushError() }

// FlushError sends what is buffered, the head first if it has not gone
// out; a response flushed before its end is chunked unless it declared
// its length.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.flushPending()
	if !w.committed {
		w.commit(nil)
	}
	w.flush()
	return w.werr
}

// flush writes out what is gathered.
func (w *response) flush() {
	if len(w.out) == 0 || w.werr != nil {
		w.out = w.out[:0]
		return
	}
	if _, err := w.c.write(w.out); err != nil {
		w.fail(err)
	}
	w.out = w.out[:0]
}

func (w *response) fail(err error) {
	w.werr = err
	w.closeAfter = true
}

// commit decides the framing and connection headers, as net/http's
// chunkWriter.writeHeader does, with p the first piece of body (nil when
// none has been written), and queues the head.
func (w *response) commit(p []byte) {
	w.committed = true
	code := w.status
	bodyAllowed := bodyAllowedForStatus(code)
	hasTE := w.te != ""
	var drop [numLines]bool

	var setLength []byte
	var lenBuf [20]byte
	if w.handlerDone && !w.hasTrailers && !hasTE && bodyAllowed && !w.hasLength && (!w.isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		setLength = strconv.AppendInt(lenBuf[:0], int64(len(p)), 10)
	}
	hasCL := w.contentLength != -1

	keepAlives := !w.c.srv.shuttingDown()
	if w.wantsClose || w.connection == "close" || !keepAlives {
		w.closeAfter = true
	}
	setConn := ""
	if w.st.body != nil && !w.closeAfter {
		closeConn, tooBig := w.st.body.settle()
		if closeConn {
			w.closeAfter = true
		}
		if tooBig {
			w.closeAfter, w.linger = true, true
			drop[lineConnection], setConn = true, "close"
		}
	}

	setType := ""
	if bodyAllowed {
		// A Content-Encoding means the body is not what it looks like.
		if !w.hasCE && !w.hasType && !hasTE && len(p) > 0 {
			setType = http.DetectContentType(p)
		}
	} else {
		drop[lineContentLength], drop[lineTransferEncoding] = true, true
		if code == http.StatusNotModified {
			drop[lineContentType] = true
		}
	}

	if hasCL && hasTE && w.te != "identity" {
		// The declared length still bounds the writes and the reuse of
		// the connection, as in net/http; only the header goes.
		w.c.srv.logf("h1: WriteHeader called with both Transfer-Encoding of %q and a Content-Length of %d", w.te, w.contentLength)
		drop[lineContentLength], hasCL = true, false
	}

	setTE := ""
	switch {
	case w.isHEAD || !bodyAllowed || code == http.StatusNoContent:
		drop[lineTransferEncoding] = true
	case hasCL:
		drop[lineTransferEncoding] = true
	case w.te == "identity":
		w.chunking = false
		w.closeAfter = true
		drop[lineTransferEncoding] = true
	default:
		w.chunking = true
		setTE = "chunked"
		if w.te == "chunked" {
			drop[lineTransferEncoding] = true
		}
	}
	if w.chunking {
		drop[lineContentLength] = true
	}
	// A handler's own Connection: close stays as it wrote it, unless
	// keep-alive has ended (net/http then writes its own), and so does
	// the Connection of a protocol switch.
	if w.closeAfter && (!keepAlives || !containsToken(w.connection, "close")) && !w.protoSwap {
		drop[lineConnection], setConn = true, "close"
	}

	b := w.out
	pos := 0
	for i, l := range w.lines {
		if drop[i] && l.end > l.off {
			b = append(b, w.head[pos:l.off]...)
			pos = l.end
		}
	}
	b = append(b, w.head[pos:]...)
	if !w.hasDate {
		b = append(b, "Date: "...)
		b = appendDate(b)
		b = append(b, "\r\n"...)
	}
	if setLength != nil {
		b = append(b, "Content-Length: "...)
		b = append(b, setLength...)
		b = append(b, "\r\n"...)
	}
	if setType != "" {
		b = append(b, "Content-Type: "...)
		b = append(b, setType...)
		b = append(b, "\r\n"...)
	}
	if setConn != "" {
		b = append(b, "Connection: "...)
		b = append(b, setConn...)
		b = append(b, "\r\n"...)
	}
	if setTE != "" {
		b = append(b, "Transfer-Encoding: "...)
		b = append(b, setTE...)
		b = append(b, "\r\n"...)
	}
	w.out = append(b, "\r\n"...)
}

// containsToken reports whether token is in v between the start or end, a
// space, a tab or a comma, in any case: net/http's hasToken, with which it
// judges the Connection of a request's first line and of a response.
func containsToken[T string | []byte](v T, token string) bool {
	if len(token) > len(v) || token == "" {
		return false
	}
	boundary := func(c byte) bool { return c == ' ' || c == ',' || c == '\t' }
	for sp := 0; sp <= len(v)-len(token); sp++ {
		if sp > 0 && !boundary(v[sp-1]) {
			continue
		}
		if end := sp + len(token); end != len(v) && !boundary(v[end]) {
			continue
		}
		match := true
		for i := range len(token) {
			if c := v[sp+i]; c != token[i] && c|0x20 != token[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// finish completes the response once the handler has returned.
func (w *response) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.flushPending()
	if !w.committed {
		w.commit(nil)
	}
	if w.chunking {
		w.out = append(w.out, "0\r\n"...)
		w.out = w.appendTrailers(w.out)
		w.out = append(w.out, "\r\n"...)
	}
	w.flush()
	w.endBody()
}

// abort ends a response whose handler panicked: what went past the body
// buffer is sent, as net/http flushes its connection buffer when it
// closes, and the request body is closed as net/http closes it.
func (w *response) abort() {
	w.flush()
	w.endBody()
}

// endBody closes the request body (a short rest is dropped to keep the
// connection, as net/http's body.Close does).
func (w *response) endBody() {
	if w.st.body == nil {
		return
	}
	closeConn, early := w.st.body.end()
	if closeConn {
		w.closeAfter = true
	}
	if early {
		w.closeAfter, w.linger = true, true
	}
}

// appendTrailers appends the trailer lines, sorted by name as net/http
// writes them: for each name the values of its http.TrailerPrefix key
// and then those of the name declared in Trailer, once for each time it
// was declared, as they are now.
func (w *response) appendTrailers(b []byte) []byte {
	names := w.keys[:0]
	for k := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			names = append(names, name)
		}
	}
	names = append(names, w.trailers...)
	slices.Sort(names)
	names = slices.Compact(names)
	for _, name := range names {
		if !httpguts.ValidHeaderFieldName(name) {
			continue
		}
		for _, v := range w.header[http.TrailerPrefix+name] {
			b = appendField(b, name, v)
		}
		for _, t := range w.trailers {
			if t != name {
				continue
			}
			for _, v := range w.header[name] {
				b = appendField(b, name, v)
			}
		}
	}
	clear(names)
	w.keys = names[:0]
	return b
}

// reusable reports whether the connection may carry another request.
func (w *response) reusable() bool {
	if w.closeAfter || w.linger || w.werr != nil {
		return false
	}
	if !w.isHEAD && w.contentLength != -1 && bodyAllowedForStatus(w.status) && w.contentLength != w.written {
		return false
	}
	return true
}

func bodyAllowedForStatus(status int) bool {
	switch {
	case status >= 100 && status <= 199, status == 204, status == 304:
		return false
	}
	return true
}

func appendStatusLine(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	if text := http.StatusText(code); text != "" {
		b = strconv.AppendInt(b, int64(code), 10)
		b = append(b, ' ')
		b = append(b, text...)
	} else {
		b = fmt.Appendf(b, "%03d status code %d", code, code)
	}
	return append(b, "\r\n"...)
}

// foreachElement calls fn with each non-empty element of a comma-separated
// list.
func foreachElement(v string, fn func(string)) {
	for f := range strings.SplitSeq(v, ",") {
		if f = strings.Trim(f, " \t\r\n"); f != "" {
			fn(f)
		}
	}
}

type dateEntry struct {
	sec int64
	b   []byte
}

var dateCache atomic.Pointer[dateEntry]

// appendDate appends the current time as an HTTP date, formatted once a
// second.
func appendDate(b []byte) []byte {
	now := time.Now()
	d := dateCache.Load()
	if d == nil || d.sec != now.Unix() {
		d = &dateEntry{sec: now.Unix(), b: now.UTC().AppendFormat(nil, http.TimeFormat)}
		dateCache.Store(d)
	}
	return append(b, d.b...)
}
