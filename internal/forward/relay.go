package forward

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/tbsphathuynh/proxy/internal/reqinfo"
)

var (
	errBadUpgrade      = errors.New("client asked to switch to an unprintable protocol")
	errBodyAfterReturn = errors.New("forward: request body read after the handler returned")
	errBadStatus       = errors.New("server's answer has a status code below 100")
)

// relay sends a server's response on to the client: status, end-to-end
// headers, the body as it arrives, then trailers.
func (rt *Route) relay(w http.ResponseWriter, r *http.Request, res *http.Response, info *reqinfo.Info) {
	h := w.Header()
	announced := len(res.Trailer)
	var lines *[]byte
	contentType := ""
	if info != nil && info.Head != nil && announced == 0 {
		lines, contentType = setRawHeader(w, res)
	}
	if lines == nil {
		if res.Header == nil {
			// Parsed for the direct lane's relay, which could not take it.
			res.Header = rawOf(res).header()
		}
		contentType = firstValue(res.Header["Content-Type"])
		copyResponseHeader(h, res.Header)
		// net/http sends the trailers named in a Trailer header after the
		// body; the transport removed the server's Trailer header and
		// keeps the names in res.Trailer.
		if announced > 0 {
			names := make([]string, 0, announced)
			for k := range res.Trailer {
				names = append(names, k)
			}
			h.Add("Trailer", strings.Join(names, ", "))
		}
	}

	w.WriteHeader(res.StatusCode)
	if lines != nil {
		putBuffer(lines)
	}

	flush := flushEach(res.ContentLength, contentType)
	werr, rerr := copyBody(w, res.Body, flush)
	if rerr != nil {
		res.Body.Close()
		if info != nil {
			info.Err = rerr
		}
		rt.log.Debug("reading a response body", "route", rt.name, "err", rerr)
		// The client must not take a cut-short body for a whole one: abort
		// the response, which closes its connection (golang/go#23643).
		if r.Context().Value(http.ServerContextKey) != nil {
			panic(http.ErrAbortHandler)
		}
		return
	}
	res.Body.Close() // reads the trailers into res.Trailer
	if werr != nil {
		// The client went away; nothing more to send it.
		if info != nil {
			info.Err = werr
		}
		return
	}

	if len(res.Trailer) == 0 {
		return
	}
	// Trailers force a chunked answer even for a short body, which net/http
	// would otherwise send with a Content-Length.
	flushWriter(w)
	if len(res.Trailer) == announced {
		for k, v := range res.Trailer {
			h[k] = v
		}
		return
	}
	for k, vv := range res.Trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			h.Add(k, v)
		}
	}
}

// flushEach reports whether each chunk of a response goes to the client as
// soon as it arrives: server-sent events, and anything of unknown length,
// which may be a stream (long polling, chunked progress output).
func flushEach(contentLength int64, contentType string) bool {
	if contentLength == -1 {
		return true
	}
	if contentType == "" {
		return false
	}
	mt, _, _ := strings.Cut(contentType, ";")
	// The MIME type is defined in https://html.spec.whatwg.org/#text/event-stream.
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// bufferSize is the copy buffer for bodies: a few TCP segments, enough
// that a large body moves in few writes.
const bufferSize = 32 << 10

var buffers = sync.Pool{New: func() any { b := make([]byte, bufferSize); return &b }}

// copyBody copies body to w, flushing after every chunk when flush is set.
// It reports an error writing to the client and an error reading the body
// apart: only the second means the answer was cut short by the server.
func copyBody(w http.ResponseWriter, body io.Reader, flush bool) (werr, rerr error) {
	if flush {
		// Send the headers now: the first chunk may be a while.
		if werr = flushWriter(w); werr != nil {
			return werr, nil
		}
	}
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr = w.Write(buf[:n]); werr != nil {
				return werr, nil
			}
			if flush {
				if werr = flushWriter(w); werr != nil {
					return werr, nil
				}
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			if errors.Is(err, context.Canceled) {
				// The request's context ended: the client went away while
				// the body was on its way.
				return err, nil
			}
			return nil, err
		}
	}
}

// flushWriter sends what w has buffered to the client.
func flushWriter(w http.ResponseWriter) error {
	if f, ok := w.(interface{ FlushError() error }); ok {
		return f.FlushError()
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
		return nil
	}
	return http.NewResponseController(w).Flush()
}

// rawHeaderSetter is a writer that takes a relayed head's lines as they
// are (h1's; see its SetRawHeader).
type rawHeaderSetter interface {
	SetRawHeader(code int, lines []byte, length int64, typ, encoding, date bool) bool
}

// setRawHeader hands the end-to-end lines of a response this package's
// client parsed to the writer under w that takes them as they are, for its
// next WriteHeader: the direct lane's relay, which so skips copying the
// response's header map into the writer's and the writer's walking and
// sorting it again. It returns the buffer holding the lines, for putBuffer
// once WriteHeader is done, or nil, having set nothing, for a response or
// a writer outside that case.
func setRawHeader(w http.ResponseWriter, res *http.Response) (buf *[]byte, contentType string) {
	fr := rawOf(res)
	if fr == nil {
		return nil, ""
	}
	rs := findRawSetter(w)
	if rs == nil {
		return nil, ""
	}
	buf = directHeads.Get().(*[]byte)
	lines, typ, hasType, encoding, date, ok := appendRawLines((*buf)[:0], fr)
	*buf = lines
	if ok && rs.SetRawHeader(res.StatusCode, lines, res.ContentLength, hasType, encoding, date) {
		return buf, typ
	}
	putBuffer(buf)
	return nil, ""
}

// rawOf is the parsed head of a response from this package's client, or
// nil for one http.ReadResponse read or without a body.
func rawOf(res *http.Response) *fastResponse {
	tb, ok := res.Body.(*trackedBody)
	if !ok {
		return nil
	}
	b, ok := tb.ReadCloser.(*body)
	if !ok {
		return nil
	}
	return b.raw
}

func findRawSetter(w http.ResponseWriter) rawHeaderSetter {
	for range 8 {
		if rs, ok := w.(rawHeaderSetter); ok {
			return rs
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}

// appendRawLines appends the end-to-end lines of fr's head to b, as
// copyResponseHeader would have them relayed: without hop-by-hop lines or
// those the Connection field names, whether or not it says close (as
// buildHeader has them), with the Cache-Control a Pragma: no-cache
// implies. It also returns their first Content-Type, and reports whether
// they have one, a first Content-Encoding that is not empty and a Date. ok
// is false when the head has more Connection lines than it follows.
func appendRawLines(b []byte, fr *fastResponse) (lines []byte, typ string, hasType, encoding, date, ok bool) {
	var connArr [4]string
	conn := connArr[:0]
	for _, f := range fr.fields[:fr.nfields] {
		if fr.head[f.k0:f.k1] == "Connection" {
			if len(conn) == len(connArr) {
				return b, "", false, false, false, false
			}
			conn = append(conn, fr.head[f.v0:f.v1])
		}
	}
	sawEncoding := false
	for _, f := range fr.fields[:fr.nfields] {
		k, v := fr.head[f.k0:f.k1], fr.head[f.v0:f.v1]
		if isHop(k) || len(conn) > 0 && listed(conn, k) {
			continue
		}
		switch k {
		case "Content-Type":
			if !hasType {
				hasType, typ = true, v
			}
		case "Content-Encoding":
			if !sawEncoding {
				sawEncoding, encoding = true, v != ""
			}
		case "Date":
			date = true
		}
		b = append(b, k...)
		b = append(b, ": "...)
		b = append(b, v...)
		b = append(b, "\r\n"...)
	}
	if fr.noCache {
		b = append(b, "Cache-Control: no-cache\r\n"...)
	}
	return b, typ, hasType, encoding, date, true
}

func firstValue(vv []string) string {
	if len(vv) == 0 {
		return ""
	}
	return vv[0]
}
