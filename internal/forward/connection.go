package forward

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"

	"github.com/tbsphathuynh/proxy/internal/httpsyntax"
)

// A server's answer may name, in its Connection field, fields that concern
// its own connection only; a proxy removes them with the Connection field
// itself (RFC 9110 §7.6.1). net/http's reader drops the whole Connection
// field when it says close (http.ReadResponse, and so http.Transport), and
// with it the names it carried: `Connection: close, X-Secret` would have
// X-Secret relayed. This file finds those names again, and removes what
// they name from the response before it is relayed, on both paths:
//
//   - our own client's parser (parseResponseHead) keeps the head it parsed,
//     so its header map is made without them (buildHeader), and where it
//     leaves a head to http.ReadResponse, readResponse reads the names
//     from the head still in the read buffer, or from a copy when the
//     head came in more than one read (headTap);
//   - through http.Transport, the connections it dials keep a copy of the
//     start of each answer (headConn), and the exchange finds its
//     connection through a client trace (connWatch).
//
// An answer without close is untouched: net/http keeps its Connection
// field, and copyResponseHeader drops what it names.

// dropNamed deletes from h every field the Connection field values conn
// name, close and keep-alive included (a field named Close is reserved
// for that reason, RFC 9110 §18.4). It allocates nothing.
func dropNamed(h http.Header, conn []string) {
	if len(conn) == 0 {
		return
	}
	for k := range h {
		if listed(conn, k) {
			delete(h, k)
		}
	}
}

// lostConnection reports whether net/http's reader dropped res's
// Connection field for a close, with whatever names it carried: only a
// final HTTP/1.1 answer that closes its connection and has none left.
// An HTTP/1.0 answer keeps its field. Informational answers are relayed
// as the reader left them.
func lostConnection(res *http.Response) bool {
	return res.Close && res.StatusCode >= 200 && res.ProtoAtLeast(1, 1) && res.Header["Connection"] == nil
}

// maxHeadCopy bounds the start of an answer a headConn keeps: a head
// longer than this (or a run of 1xx heads) is not searched, and nothing
// is removed from it (docs/security.md).
const maxHeadCopy = 8 << 10

// headEnd returns the length of the response head at the start of b,
// to the end of the empty line that ends it, with its status code; n is
// -1 while b holds no whole head. Lines end in LF, with or without CR
// before it, as net/textproto reads them.
func headEnd(b []byte) (n, code int) {
	code = -1
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1, code
		}
		line := b[i : i+j]
		if i == 0 {
			code = statusCode(line)
		} else if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			return i + j + 1, code
		}
		i += j + 1
	}
	return -1, code
}

// statusCode is the three-digit code of a status line, or -1. As
// http.ReadResponse, it takes the code after the first space and any
// spaces that follow it.
func statusCode(line []byte) int {
	_, rest, ok := bytes.Cut(line, []byte{' '})
	rest = bytes.TrimLeft(rest, " ")
	if !ok || len(rest) < 3 || len(rest) > 3 && rest[3] != ' ' && rest[3] != '\r' {
		return -1
	}
	code := 0
	for _, c := range rest[:3] {
		if !isDigit(c) {
			return -1
		}
		code = code*10 + int(c-'0')
	}
	return code
}

// finalHead finds the final answer's head at the start of b, after any
// informational ones (103 Early Hints, 100 Continue): it returns where it
// starts and ends, and its code; end is -1 while b holds no whole final
// head. A 101 is final: what follows it is another protocol.
func finalHead(b []byte) (start, end, code int) {
	for {
		n, c := headEnd(b[start:])
		if n < 0 || c < 0 {
			return start, -1, c
		}
		if c >= 200 || c == http.StatusSwitchingProtocols || c < 100 {
			return start, start + n, c
		}
		start += n
	}
}

// connectionValues returns the values of the Connection fields of head,
// a whole head, as net/textproto would read them (names compared without
// regard to case, values trimmed, folded lines joined), copied out of
// head.
func connectionValues(head []byte) []string {
	var conn []string
	in := false // the last field line was a Connection field
	for i := bytes.IndexByte(head, '\n') + 1; i < len(head); {
		j := bytes.IndexByte(head[i:], '\n')
		if j < 0 {
			break
		}
		line := bytes.TrimSuffix(head[i:i+j], []byte{'\r'})
		i += j + 1
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			// obs-fold (RFC 9112 §5.2): net/textproto joins the line to
			// the one before with a space.
			if in {
				if v := bytes.Trim(line, " \t"); len(v) > 0 {
					conn[len(conn)-1] += " " + string(v)
				}
			}
			continue
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		in = ok && httpsyntax.EqualFold(name, "Connection")
		if in {
			conn = append(conn, string(bytes.Trim(value, " \t")))
		}
	}
	return conn
}

// headConn is a connection to a server that http.Transport dials: it keeps
// a copy of the start of each answer as the transport reads it, up to the
// end of the final head (or maxHeadCopy bytes), so that the Connection
// field net/http drops for a close can be read again (connWatch). An
// answer begins with the first bytes read after a request was written;
// the transport writes from one goroutine and reads from another, and
// reads an idle connection's next bytes before the next request goes out,
// hence the atomics. Nothing is kept once the connection carries another
// protocol (after a 101) or TLS, whose bytes are no head.
type headConn struct {
	net.Conn
	// wrote says a request was written since the current answer began.
	wrote atomic.Bool
	// copying says the current answer's final head is not yet whole in head.
	copying atomic.Bool
	// off says the connection carries bytes that are no HTTP/1 head: TLS,
	// or a protocol switched to.
	off atomic.Bool
	// first is false until the first write, which tells TLS from HTTP.
	first atomic.Bool

	// mu guards head and end: the transport's reader appends, the
	// exchange that got the answer reads.
	mu   sync.Mutex
	head []byte
	end  int // the end of the final head in head, or -1
}

func newHeadConn(c net.Conn) *headConn {
	hc := &headConn{Conn: c}
	hc.end = -1
	return hc
}

func (c *headConn) Write(p []byte) (int, error) {
	if !c.off.Load() {
		// A TLS handshake record starts with content type 22 (RFC 8446
		// §5.1); an HTTP request never does.
		if !c.first.Swap(true) && len(p) > 0 && p[0] == 22 {
			c.off.Store(true)
		} else {
			c.wrote.Store(true)
		}
	}
	return c.Conn.Write(p)
}

func (c *headConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.off.Load() && (c.copying.Load() || c.wrote.Load()) {
		c.record(p[:n])
	}
	return n, err
}

// record adds p, bytes just read, to the copy of the current answer's
// start, beginning a new copy when a request went out since the last.
func (c *headConn) record(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wrote.Swap(false) {
		c.head, c.end = c.head[:0], -1
		c.copying.Store(true)
	}
	if !c.copying.Load() {
		return
	}
	if len(c.head) == 0 {
		// Usually the whole head comes in the first read: copy the head,
		// not the body after it.
		if _, end, code := finalHead(p); end >= 0 && end <= maxHeadCopy {
			c.head = append(c.head, p[:end]...)
			c.finish(end, code)
			return
		}
	}
	c.head = append(c.head, p[:min(len(p), maxHeadCopy-len(c.head))]...)
	if _, end, code := finalHead(c.head); end >= 0 {
		c.finish(end, code)
	} else if len(c.head) == maxHeadCopy {
		c.copying.Store(false) // too long: left incomplete, end stays -1
	}
}

// finish marks the final head whole at end. Called with c.mu held.
func (c *headConn) finish(end, code int) {
	c.end = end
	c.copying.Store(false)
	if code == http.StatusSwitchingProtocols {
		c.off.Store(true)
	}
}

// connection returns the Connection values of the last answer's final
// head, which the transport has read whole, if its copy is whole and its
// code is code; ok is false otherwise.
func (c *headConn) connection(code int) (conn []string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.end < 0 || c.copying.Load() {
		return nil, false
	}
	start, end, got := finalHead(c.head[:c.end])
	if end != c.end || got != code {
		return nil, false
	}
	return connectionValues(c.head[start:end]), true
}

// dialHeads wraps dial so that the connections it makes are headConns.
func dialHeads(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return newHeadConn(c), nil
	}
}

// connWatch is the client trace of a request http.Transport carries: it
// learns the connection the request went out on (GotConn), to read its
// answer's Connection field again when net/http dropped it.
type connWatch struct {
	trace httptrace.ClientTrace
	conn  atomic.Pointer[headConn]
}

func newConnWatch() *connWatch {
	w := new(connWatch)
	w.trace.GotConn = w.gotConn
	return w
}

// gotConn is called with each connection the transport tries the request
// on; the last one carried it.
func (w *connWatch) gotConn(info httptrace.GotConnInfo) {
	hc, _ := info.Conn.(*headConn)
	w.conn.Store(hc)
}

// restore removes from res, which the transport returned, the fields its
// Connection field named when net/http dropped that field for a close.
// When the copy of the head is not whole, nothing is removed.
func (w *connWatch) restore(res *http.Response) {
	if !lostConnection(res) {
		return
	}
	hc := w.conn.Load()
	if hc == nil {
		return
	}
	if conn, ok := hc.connection(res.StatusCode); ok {
		dropNamed(res.Header, conn)
	}
}
