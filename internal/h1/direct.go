package h1

import (
	"context"
	"net/http"
	"net/url"
)

// Direct serves requests from their raw heads, before any http.Request is
// built: the lane for a handler that can forward a head as it came, which
// costs a fraction of building the request, its header map and a response
// writer (docs/performance.md). Only requests without a body are offered
// to it.
type Direct interface {
	// ServeDirect serves the request of x and reports true, or reports
	// false having written nothing, and the request then goes to the
	// server's Handler as usual. x is valid only until it returns.
	ServeDirect(x *Exchange) bool
}

// Exchange is a request offered to a Direct handler, as its head was
// read: the byte slices it returns are views of the connection's buffer,
// valid until ServeDirect returns and not to be modified.
type Exchange struct {
	c    *conn
	st   *reqState
	h    *head
	buf  []byte    // the head
	w    *response // the answer's writer, once asked for
	err  error     // the first write error
	stop bool      // the connection closes after this exchange
}

// Method is the request's method.
func (x *Exchange) Method() []byte { return x.span(x.h.method) }

// Target is the request target as sent: an origin-form path with its
// query, of printable ASCII.
func (x *Exchange) Target() []byte { return x.span(x.h.target) }

// Fields is the number of header lines of the request, Host among them.
func (x *Exchange) Fields() int { return x.h.nfields }

// Field is the i'th header line's name, as the client spelled it, and its
// value without surrounding white space.
func (x *Exchange) Field(i int) (name, value []byte) {
	f := &x.h.fields[i]
	return x.span(f.name), x.span(f.value)
}

func (x *Exchange) span(s span) []byte { return x.buf[s.off:s.end:s.end] }

// ClientClose reports whether the client asked for the connection to
// close after this request; the answer should then say Connection: close.
func (x *Exchange) ClientClose() bool { return x.h.close }

// RemoteAddr is the client's address, as http.Request.RemoteAddr.
func (x *Exchange) RemoteAddr() string { return x.c.remoteAddr }

// Context is the context of the connection's requests: it ends when the
// client goes away while the request is served (after a short delay, as
// for a request served through the Handler), when the connection closes,
// or once the connection has waited idle for its next request for a
// second (conn.dropCtx).
func (x *Exchange) Context() context.Context { return x.c.ctx }

// Request is the request as far as the direct lane needs one, without
// parsing more of the head: the connection's context, the method, the
// client's address and the protocol, with an empty URL and header and no
// body. It is the connection's until ServeDirect returns.
func (x *Exchange) Request() *http.Request {
	st := x.st
	r := &st.req
	*r = *x.c.proto
	r.Method = methodString(x.Method())
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.RemoteAddr = x.c.remoteAddr
	st.url = url.URL{}
	r.URL = &st.url
	r.Body = http.NoBody
	r.Close = x.h.close
	return r
}

// methodString is m as a string, without an allocation for the common
// methods.
func methodString(m []byte) string {
	for _, s := range commonMethods {
		if string(m) == s {
			return s
		}
	}
	return string(m)
}

var commonMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodDelete, http.MethodOptions, http.MethodPatch,
}

// ResponseWriter is the writer of the answer, as a Handler gets it: it
// frames the answer, adds Date and keeps the connection alive or closes
// it as it would for a Handler. Use it or Write, not both.
func (x *Exchange) ResponseWriter() http.ResponseWriter {
	if x.w == nil {
		x.w = &x.st.resp
		x.w.reset(x.c, string(x.Method()) == http.MethodHead, x.st)
	}
	return x.w
}

// Write writes bytes of the response to the connection as they are: the
// Direct handler frames the answer itself. After an error the connection
// closes once ServeDirect returns.
func (x *Exchange) Write(p []byte) (int, error) {
	if x.err != nil {
		return 0, x.err
	}
	n, err := x.c.write(p)
	if err != nil {
		x.err = err
	}
	return n, err
}

// Close has the connection close after this exchange, as an answer whose
// end only the closing can mark needs.
func (x *Exchange) Close() { x.stop = true }

// serveDirect offers the request of the head of n bytes at the start of
// the buffer to d. It reports whether d served it, and then whether the
// connection stays open for another request.
func (c *conn) serveDirect(d Direct, st *reqState, n int) (served, keep bool) {
	x := &st.direct
	*x = Exchange{c: c, st: st, h: &st.head, buf: (*c.buf)[c.r : c.r+n]}
	defer func() {
		if v := recover(); v != nil {
			// Whatever was written is cut off by closing, as a panicking
			// Handler's response is.
			c.stopWatch()
			if x.w != nil {
				x.w.abort()
			}
			served, keep = true, false
			c.logPanic(v)
		}
		*x = Exchange{}
	}()
	c.armWatch()
	served = d.ServeDirect(x)
	if served {
		// The head is consumed before the watch stops, so that the byte it
		// may have read has room after the bytes still buffered.
		c.r += n
	}
	c.stopWatch()
	if !served {
		if x.err != nil || x.stop || x.w != nil {
			panic("h1: ServeDirect answered or closed, then declined the request")
		}
		return false, false
	}
	keep = x.err == nil && !x.stop
	if w := x.w; w != nil {
		w.finish()
		c.linger = w.linger
		return true, keep && w.reusable()
	}
	return true, keep && !st.head.close
}
