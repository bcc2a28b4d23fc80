package h1

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// bufferBeforeChunking is how much body a response holds back waiting for
// the handler to end: a response that ends within it is sent with a
// Content-Length, a longer one chunked, as net/http does.
const bufferBeforeChunking = 2048

// flushAt is how much response is gathered before it is written out.
const flushAt = 4096

// response is the http.ResponseWriter of the fast path. It follows
// net/http's response rules (see chunkWriter.writeHeader there): the
// header is captured at WriteHeader, Content-Length is set for a response
// that ends within bufferBeforeChunking bytes and chunking used otherwise,
// Content-Type sniffed when missing, Date added, trailers sent after a
// chunked body, Connection: close when the connection will close, no body
// for HEAD, 1xx, 204 and 304.
type response struct {
	c      *conn
	req    *http.Request
	st     *reqState
	header http.Header

	status      int
	wroteHeader bool
	committed   bool
	handlerDone bool
	chunking    bool
	closeAfter  bool
	isHEAD      bool

	// contentLength is the declared length, -1 when none; written counts
	// the body bytes the handler wrote.
	contentLength int64
	written       int64

	// What WriteHeader captured of the header besides the lines already
	// in head: the framing and connection headers, decided on at commit.
	clValues, teValues, connValues []string
	haveType, hasCE, hasDate       bool
	trailers                       []string
	trailerDeclared                bool
	prefixTrailers                 bool

	head    []byte // status line and captured header lines
	pending []byte // body held back before commit
	out     []byte // bytes to write to the connection
	keys    []string
	vec     net.Buffers
	werr    error
}

func (w *response) reset(c *conn, r *http.Request, st *reqState) {
	w.c, w.req, w.st = c, r, st
	w.contentLength = -1
	w.isHEAD = r.Method == "HEAD"
}

// clean readies w for the pool, keeping its buffers.
func (w *response) clean() {
	*w = response{
		header:   w.header,
		head:     w.head[:0],
		pending:  w.pending[:0],
		out:      w.out[:0],
		keys:     w.keys[:0],
		trailers: w.trailers[:0],
	}
}

// Header implements http.ResponseWriter.
func (w *response) Header() http.Header { return w.header }

// WriteHeader implements http.ResponseWriter.
func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
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
}

// informational sends a 1xx answer at once, with the handler's header
// minus the framing headers.
func (w *response) informational(code int) {
	b := appendStatusLine(w.out[:0], code)
	b = w.appendHeader(b, func(k string) bool { return k == "Content-Length" || k == "Transfer-Encoding" })
	b = append(b, "\r\n"...)
	w.out = b
	w.flush()
}

// capture records the header as WriteHeader found it: net/http snapshots
// it there, so later changes by the handler are not sent (trailers
// aside).
func (w *response) capture() {
	h := w.header
	if cl := h["Content-Length"]; len(cl) > 0 {
		v, err := strconv.ParseInt(cl[0], 10, 64)
		if err == nil && v >= 0 {
			w.contentLength = v
			w.clValues = cl
		} else {
			w.c.srv.logf("h1: invalid Content-Length of %q", cl[0])
		}
	}
	w.teValues = h["Transfer-Encoding"]
	w.connValues = h["Connection"]
	_, w.haveType = h["Content-Type"]
	w.hasCE = h.Get("Content-Encoding") != ""
	_, w.hasDate = h["Date"]
	for _, v := range h["Trailer"] {
		w.trailerDeclared = true
		foreachElement(v, func(name string) {
			name = http.CanonicalHeaderKey(name)
			if httpguts.ValidTrailerHeader(name) {
				w.trailers = append(w.trailers, name)
			}
		})
	}

	b := appendStatusLine(w.head[:0], w.status)
	b = w.appendHeader(b, func(k string) bool {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection":
			return true
		case "Content-Type":
			return w.status == http.StatusNotModified
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			w.prefixTrailers = true
			return true
		}
		return false
	})
	w.head = b
}

// appendHeader appends the handler's header lines in sorted order, as
// net/http writes them, skipping the keys skip names and invalid ones.
func (w *response) appendHeader(b []byte, skip func(string) bool) []byte {
	keys := w.keys[:0]
	for k := range w.header {
		if !skip(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range w.header[k] {
			b = appendField(b, k, v)
		}
	}
	clear(keys)
	w.keys = keys[:0]
	return b
}

// appendField appends one header line, with the value trimmed and any CR
// or LF in it turned into a space, as net/http writes it.
func appendField(b []byte, k, v string) []byte {
	v = strings.Trim(v, " \t\r\n")
	b = append(b, k...)
	b = append(b, ": "...)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, "\r\n"...)
}

// Write implements http.ResponseWriter.
func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if w.werr != nil {
		return 0, w.werr
	}
	if !w.committed {
		if len(w.pending)+len(p) <= bufferBeforeChunking {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.commit()
		if w.werr != nil {
			return 0, w.werr
		}
	}
	w.writeBody(p)
	if w.werr != nil {
		return 0, w.werr
	}
	return len(p), nil
}

// writeBody sends p as body bytes, framed when chunking.
func (w *response) writeBody(p []byte) {
	if w.isHEAD || len(p) == 0 {
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

// Flush implements http.Flusher.
func (w *response) Flush() { w.FlushError() }

// FlushError sends what is buffered, the head first if it has not gone
// out; a response flushed before its end is chunked unless it declared
// its length.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit()
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
	if _, err := w.c.rwc.Write(w.out); err != nil {
		w.fail(err)
	}
	w.out = w.out[:0]
}

func (w *response) fail(err error) {
	w.werr = err
	w.closeAfter = true
}

// commit decides the framing and connection headers, as net/http's
// chunkWriter.writeHeader does, and queues the head and the body held
// back so far.
func (w *response) commit() {
	w.committed = true
	p := w.pending
	code := w.status
	bodyAllowed := bodyAllowedForStatus(code)
	trailers := w.trailerDeclared || w.prefixTrailers
	te := ""
	if len(w.teValues) > 0 {
		te = w.teValues[0]
	}
	hasTE := te != ""

	var setLength []byte
	var lenBuf [20]byte
	if w.handlerDone && !trailers && !hasTE && bodyAllowed && len(w.clValues) == 0 && (!w.isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		setLength = strconv.AppendInt(lenBuf[:0], int64(len(p)), 10)
	}
	hasCL := w.contentLength != -1

	if w.req.Close || w.c.srv.shuttingDown() {
		w.closeAfter = true
	}
	if len(w.connValues) > 0 && w.connValues[0] == "close" {
		w.closeAfter = true
	}
	dropConn := false
	setConn := ""
	if w.req.ContentLength != 0 && !w.closeAfter {
		closeConn, tooBig := w.st.body.settle()
		if closeConn {
			w.closeAfter = true
		}
		if tooBig {
			dropConn, setConn = true, "close"
		}
	}

	setType := ""
	if bodyAllowed && !w.hasCE && !w.haveType && !hasTE && len(p) > 0 {
		setType = http.DetectContentType(p)
	}

	dropCL, dropTE := !bodyAllowed, !bodyAllowed
	if hasCL && hasTE && te != "identity" {
		dropCL, hasCL = true, false
		w.contentLength = -1
	}
	setTE := ""
	switch {
	case w.isHEAD || !bodyAllowed || code == http.StatusNoContent:
		dropTE = true
	case hasCL:
		dropTE = true
	case te == "identity":
		w.chunking = false
		w.closeAfter = true
		dropTE = true
	default:
		w.chunking = true
		setTE = "chunked"
		if te == "chunked" {
			dropTE = true
		}
	}
	if w.chunking {
		dropCL = true
	}
	if w.closeAfter && !hasConnToken(w.connValues, "close") {
		dropConn, setConn = true, "close"
	}

	b := append(w.out, w.head...)
	if !dropCL {
		for _, v := range w.clValues {
			b = appendField(b, "Content-Length", v)
		}
	}
	if !dropTE {
		for _, v := range w.teValues {
			b = appendField(b, "Transfer-Encoding", v)
		}
	}
	if !dropConn {
		for _, v := range w.connValues {
			b = appendField(b, "Connection", v)
		}
	}
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
	w.pending = w.pending[:0]
	w.writeBody(p)
}

func hasConnToken(values []string, token string) bool {
	if len(values) == 0 {
		return false
	}
	return hasToken([]byte(values[0]), token)
}

// finish completes the response once the handler has returned.
func (w *response) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit()
	}
	if w.chunking && !w.isHEAD {
		w.out = append(w.out, "0\r\n"...)
		w.out = w.appendTrailers(w.out)
		w.out = append(w.out, "\r\n"...)
	}
	w.flush()
	if w.req.ContentLength != 0 {
		if w.st.body.end(!w.closeAfter) {
			w.closeAfter = true
		}
	}
}

// appendTrailers appends the trailer lines: the declared names' values
// and the keys with http.TrailerPrefix, as they are now.
func (w *response) appendTrailers(b []byte) []byte {
	for _, k := range w.trailers {
		for _, v := range w.header[k] {
			b = appendField(b, k, v)
		}
	}
	for k, vv := range w.header {
		name, ok := strings.CutPrefix(k, http.TrailerPrefix)
		if !ok || !httpguts.ValidHeaderFieldName(name) {
			continue
		}
		for _, v := range vv {
			b = appendField(b, name, v)
		}
	}
	return b
}

// reusable reports whether the connection may carry another request.
func (w *response) reusable() bool {
	if w.closeAfter || w.werr != nil {
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
