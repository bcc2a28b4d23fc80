package h1

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tbsphathuynh/proxy/internal/donehook"
	"github.com/tbsphathuynh/proxy/internal/sched"
)

// Connection states, for Shutdown: only an idle connection may be closed
// under a client's feet, and a new one once it has waited newConnGrace
// for its first request.
const (
	stateNew int32 = iota
	stateIdle
	stateActive
	stateClosed
)

// newConnGrace is how long Shutdown leaves a new connection to its first
// request, as net/http does (golang/go#22682): the request may be on its
// way, and a client does not send it again on a fresh connection.
const newConnGrace = 5 // seconds

// readBufferSize bounds the heads the fast path parses; a longer head goes
// to net/http, which enforces MaxHeaderBytes.
const readBufferSize = 4096

// watchDelay is how long a request waits before a read on its connection
// starts watching for the client going away. Most requests end sooner and
// never pay for the watch; a client that leaves a slow request is noticed
// within this delay and a tick of the watcher (watchTick).
const watchDelay = 100 * time.Millisecond

var readBuffers = sync.Pool{New: func() any { b := make([]byte, readBufferSize); return &b }}

var aLongTimeAgo = time.Unix(1, 0)

// conn is one client connection on the fast path.
type conn struct {
	srv   *Server
	rwc   net.Conn
	raw   syscall.RawConn
	state atomic.Int32
	// accepted is when the connection was accepted, in Unix seconds.
	accepted int64

	// readFn is c.readSome as a value made once, for RawConn.Read.
	readFn func(fd uintptr) bool
	rerr   error
	//lint:ignore U1000 only unix's rawWriter has fields to use.
	rawWriter
	// wait is the wait for the client's bytes (see fill); again says
	// readSome found nothing and wants the read retried after a yield,
	// bound that it wants a bounded park, parking that one is under way.
	wait                  sched.Wait
	again, bound, parking bool

	// buf is borrowed from readBuffers only while it holds unread bytes
	// or a read is under way; (*buf)[r:w] are the bytes not consumed yet.
	buf  *[]byte
	r, w int

	// connCtx is what ConnContext made of the connection's context, for
	// net/http to carry on with if the connection goes to it.
	connCtx context.Context

	// waitDeadline is the read deadline the wait for a request set last,
	// while no other has been set since; zero when unknown. Only the
	// goroutine serving the connection uses it.
	waitDeadline time.Time

	// ctx is the context requests run in, made for a request by startCtx
	// and nil while the connection waits idle (dropCtx).
	ctx        context.Context
	cancel     context.CancelFunc // also fires the hook of ctx (donehook)
	proto      *http.Request      // carries ctx into every request
	remoteAddr string

	// linger: the connection closes with request body bytes unread, so
	// it waits after its FIN before it closes (see closeWriteAndWait).
	linger bool
	// idleUntil is the deadline of the wait for the next request; zero
	// for none.
	idleUntil time.Time
	// skipEmpty is how many CR or LF bytes may still be skipped before
	// the next request line: after a POST, net/http ignores up to four
	// (RFC 9112 §2.2, for clients that end a body with CRLF), and so does
	// the fast path, so that both read the same requests.
	skipEmpty int

	// The client-gone watch of a slow request (see watchDelay and
	// watcher): wSince, wPrev, wNext and wListed belong to the server's
	// watcher, under its lock.
	wSince       time.Time
	wPrev, wNext *conn
	wListed      bool
	wmu          sync.Mutex
	wArmed       bool
	wRunning     bool
	wDone        chan struct{}
	wByte        [1]byte
	wGot         bool
}

func (s *Server) newConn(rw net.Conn) (*conn, bool) {
	sc, ok := rw.(syscall.Conn)
	if !ok {
		return nil, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, false
	}
	c := &conn{srv: s, rwc: rw, raw: raw, remoteAddr: rw.RemoteAddr().String(), accepted: time.Now().Unix()}
	c.readFn = c.readSome
	c.initWriter()
	ctx := context.WithValue(s.base, http.LocalAddrContextKey, rw.LocalAddr())
	if cc := s.connContext; cc != nil {
		if ctx = cc(ctx, rw); ctx == nil {
			panic("ConnContext returned nil") // as net/http does
		}
	}
	c.connCtx = ctx
	if !s.track(c, true) {
		return nil, false
	}
	return c, true
}

// startCtx makes the context the connection's requests run in, unless the
// last request's is still there. It is made for the first request rather
// than on accept, and dropped when the connection has been idle for
// shrinkAfter (dropCtx): about 450 bytes that a connection waiting for
// its next request does without (docs/performance.md, "Memory per idle
// connection").
func (c *conn) startCtx() {
	if c.ctx != nil {
		return
	}
	parentDone := c.connCtx.Done()
	ctx, cancel := context.WithCancel(c.connCtx)
	// A hook of its own for each context: a dropped one's AfterFunc below
	// may fire after the next request has registered on the new one.
	h := new(donehook.Hook)
	c.ctx = donehook.With(ctx, h)
	c.cancel = func() { cancel(); h.Fire() }
	if parentDone != nil {
		// ConnContext's context can end by itself, without c.cancel: the
		// hook must fire then too (Fire runs a function once at most).
		context.AfterFunc(ctx, h.Fire)
	}
	c.proto = (&http.Request{}).WithContext(c.ctx)
}

// dropCtx ends the context of the requests served so far. net/http ends
// each request's context once it is answered; here the requests of a
// connection share one until the connection closes or, idle, drops it.
func (c *conn) dropCtx() {
	if c.cancel != nil {
		c.cancel()
		c.ctx, c.cancel, c.proto = nil, nil, nil
	}
}

func (c *conn) releaseIfEmpty() {
	if c.buf != nil && c.r == c.w {
		putBuffer(c.buf)
		c.buf = nil
		c.r, c.w = 0, 0
	}
}

// putBuffer returns a read buffer to the pool, unless keepByte grew it:
// the pool holds buffers of readBufferSize only.
func putBuffer(b *[]byte) {
	if len(*b) == readBufferSize {
		readBuffers.Put(b)
	}
}

// fill reads more bytes after those buffered.
func (c *conn) fill() error {
	if c.buf != nil {
		if c.r > 0 {
			c.w = copy(*c.buf, (*c.buf)[c.r:c.w])
			c.r = 0
		}
		if c.w == len(*c.buf) {
			return errHeadTooLong
		}
	}
	c.rerr = nil
	for {
		c.again, c.bound = false, false
		err := c.raw.Read(c.readFn)
		if c.parking {
			c.parking = false
			c.rwc.SetReadDeadline(c.waitDeadline)
			if errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(c.waitDeadline) {
				// The park's own bound: read again, the bytes may have
				// come while nothing polled.
				c.wait.Yield()
				continue
			}
		}
		if err != nil {
			// A read retried after a yield keeps the buffer (readSome);
			// one that ends here must not, or the wait for the next
			// request would look like a partial head.
			c.releaseIfEmpty()
			return err
		}
		if !c.again {
			return c.rerr
		}
		if c.bound {
			// Park, but only until the poller would have run in a loop
			// like nginx's: under load the queue may not empty for
			// sysmon's 10 ms (package sched).
			c.wait.Bound()
			c.parking = true
			d := time.Now().Add(sched.ParkSlice)
			if c.waitDeadline.Before(d) {
				d = c.waitDeadline
			}
			c.rwc.SetReadDeadline(d)
			continue
		}
		// The scheduler is busy: rather than park, where it would be
		// woken only once nothing else is ready to run, yield and read
		// again (package sched).
		c.wait.Spin()
	}
}

var errHeadTooLong = errors.New("h1: request head longer than the read buffer")

func (c *conn) serve() { c.run(true, false) }

// run serves the connection's requests until it closes or goes to
// net/http. resumed says the wait for the next request was already under
// way on another goroutine (see shrinkAfter) and its deadline is set.
func (c *conn) run(first, resumed bool) {
	handedOver, moved := false, false
	defer func() {
		if moved {
			return
		}
		c.dropCtx()
		c.srv.watches.disarm(c)
		if !handedOver {
			c.releaseBuffer()
			if c.linger {
				c.closeWriteAndWait()
			}
			c.rwc.Close()
		}
		c.srv.track(c, false)
	}()
	hs := c.srv.hs
	limit := readBufferSize
	if hs.MaxHeaderBytes > 0 && hs.MaxHeaderBytes < limit {
		limit = hs.MaxHeaderBytes
	}
	st := (*reqState)(nil)
	defer func() {
		if st != nil {
			putState(st)
		}
	}()
	for ; ; first, resumed = false, false {
		// Wait for the next request: the header timeout for the first,
		// the idle timeout between requests (0: no limit, as net/http
		// without ReadTimeout), cut short to shrinkAfter when nothing is
		// buffered.
		headerTimeout := first
		shrink := false
		if !resumed {
			wait := hs.ReadHeaderTimeout
			if !first {
				wait = hs.IdleTimeout
			}
			now := time.Now()
			c.idleUntil = time.Time{}
			if wait > 0 {
				c.idleUntil = now.Add(wait)
			}
			deadline := c.idleUntil
			if !first && c.buf == nil && (wait == 0 || wait > shrinkAfter) {
				deadline, shrink = now.Add(shrinkAfter), true
			}
			c.setWaitDeadline(deadline, now)
		}

		var n int
		for {
			if c.buf != nil && c.w > c.r {
				// Bytes read while the connection was new or idle may
				// have come just as Shutdown closed it: then nobody can
				// have the answer, and the request is not served.
				if s := c.state.Load(); s != stateActive && (s == stateClosed || !c.state.CompareAndSwap(s, stateActive)) {
					return // closed by Shutdown
				}
				if c.skipEmpty > 0 && !c.skipLeadingEmpty() {
					goto more
				}
				if st == nil {
					st = getState()
				}
				var v verdict
				n, v = parseHead((*c.buf)[c.r:c.w], &st.head)
				if v == accept {
					break
				}
				if v == handOff {
					v = checkHandOff((*c.buf)[c.r:c.w])
				}
				if v == reject {
					c.refuse()
					return
				}
				if v == handOff || c.w-c.r >= limit {
					handedOver = c.handOver()
					return
				}
				if !headerTimeout {
					// Part of a head has come: from now on the header
					// timeout runs.
					headerTimeout, shrink = true, false
					c.setReadDeadline(hs.ReadHeaderTimeout)
				}
			}
		more:
			err := c.fill()
			if err == nil {
				continue
			}
			if shrink && c.buf == nil && errors.Is(err, os.ErrDeadlineExceeded) {
				// Idle for shrinkAfter: go on waiting on a new goroutine,
				// whose stack starts small, and let this one, with the
				// stack the last request grew, end.
				c.rwc.SetReadDeadline(c.idleUntil)
				c.waitDeadline = c.idleUntil
				c.dropCtx()
				moved = true
				go c.run(false, true)
				return
			}
			if !headerTimeout && c.buf == nil && errors.Is(err, os.ErrDeadlineExceeded) {
				// The wait for the next request passed its deadline, with
				// nothing of a request read yet.
				if c.idleUntil.IsZero() || time.Now().Before(c.idleUntil) {
					// The deadline was one an earlier wait set, a little
					// before this one's (setWaitDeadline): wait on, the
					// connection has not been idle for IdleTimeout yet.
					c.rwc.SetReadDeadline(c.idleUntil)
					c.waitDeadline = c.idleUntil
					goto more
				}
				if c.readLate() {
					// A request came in time, but this goroutine ran only
					// after the deadline: serve it, as nginx, which handles
					// what its sockets hold before the timers that expired.
					continue
				}
			}
			if err == errHeadTooLong {
				handedOver = c.handOver()
			}
			return
		}

		post := string((*c.buf)[c.r+int(st.head.method.off):c.r+int(st.head.method.end)]) == http.MethodPost
		if !c.serveRequest(st, n) {
			if st.handOff {
				handedOver = c.handOver()
			}
			return
		}
		putState(st)
		st = nil
		c.skipEmpty = 0
		if post {
			c.skipEmpty = 4
		}
		if c.srv.shuttingDown() || !c.state.CompareAndSwap(stateActive, stateIdle) {
			return
		}
		c.releaseIfEmpty()
		// When nothing of the next request is here yet and the
		// scheduler is busy, the goroutines ready to run go first: the
		// request has usually come by the time this one reads, and the
		// read takes it instead of finding nothing and parking, one
		// system call and one wake-up fewer per request
		// (docs/performance.md). Not otherwise: a client that pauses
		// between requests gains nothing by it, and below saturation the
		// yield wakes a thread for nothing (sched.Wait.Begin).
		c.wait.Begin(c.buf == nil)
	}
}

// skipLeadingEmpty drops the CR and LF bytes at the start of the buffered
// bytes that skipEmpty still allows, and reports whether any byte is left
// to parse.
func (c *conn) skipLeadingEmpty() bool {
	for c.skipEmpty > 0 && c.r < c.w {
		if b := (*c.buf)[c.r]; b != '\r' && b != '\n' {
			c.skipEmpty = 0
			break
		}
		c.r++
		c.skipEmpty--
	}
	return c.r < c.w
}

// refuse answers a request that must not be served 400, as net/http
// answers a malformed head, and has the connection close: nothing after
// the head can be trusted to start a request.
func (c *conn) refuse() {
	c.write([]byte(badRequest))
	c.linger = true
}

const badRequest = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"

// shrinkAfter is how long a connection waits for its next request on the
// goroutine that served the last one. Serving grows a goroutine's stack to
// 8 KiB or more, which an idle connection would keep until garbage
// collections halve it; past this delay the wait moves to a new goroutine
// with a small stack. Busy connections, whose requests come sooner, keep
// their goroutine: a new one would grow its stack again on every request,
// which costs more CPU than anything else on the fast path, and the move
// itself is a timer's wake-up. At 100 ms, 64 clients sending 200 requests
// a second in all (one each 320 ms) paid both on every request: 317-362
// µs of CPU per request against 229-254 at 1 s (issue 17,
// docs/performance.md "Below saturation"). A second is still far below
// the idle time of a connection that holds memory for long.
const shrinkAfter = time.Second

// rstAvoidanceDelay is how long a connection closing with request bytes
// unread waits after its FIN before it closes, as net/http's: closed at
// once, it would answer the bytes still coming with a reset, and a reset
// can destroy the response before the client has read it.
const rstAvoidanceDelay = 500 * time.Millisecond

// closeWriteAndWait sends a FIN and waits for the client to read the
// response before the connection closes, as net/http does.
func (c *conn) closeWriteAndWait() {
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	time.Sleep(rstAvoidanceDelay)
}

// setWaitDeadline sets the deadline of the wait for the next request,
// unless the one the last wait set is still in place and at most a little
// earlier: under load a connection waits every few milliseconds, and
// moving the runtime's timer each time cost 1.5% of the CPU. The deadline
// may so pass up to waitDeadlineSlack early, an eighth of the wait at
// most; run then waits on until idleUntil, so that a connection is never
// closed before it has been idle for IdleTimeout.
func (c *conn) setWaitDeadline(d, now time.Time) {
	if w := c.waitDeadline; !w.IsZero() && !d.IsZero() && !d.Before(w) &&
		d.Sub(w) < min(waitDeadlineSlack, d.Sub(now)/8) {
		return
	}
	c.rwc.SetReadDeadline(d)
	c.waitDeadline = d
}

// waitDeadlineSlack bounds how early a wait's deadline may pass.
const waitDeadlineSlack = 10 * time.Millisecond

func (c *conn) setReadDeadline(d time.Duration) {
	c.waitDeadline = time.Time{}
	if d > 0 {
		c.rwc.SetReadDeadline(time.Now().Add(d))
	} else {
		c.rwc.SetReadDeadline(time.Time{})
	}
}

func (c *conn) releaseBuffer() {
	if c.buf != nil {
		putBuffer(c.buf)
		c.buf = nil
	}
}

// handOver gives the connection to net/http with its unread bytes.
func (c *conn) handOver() bool {
	c.rwc.SetReadDeadline(time.Time{})
	c.waitDeadline = time.Time{}
	var buffered []byte
	if c.buf != nil {
		buffered = (*c.buf)[c.r:c.w]
	}
	if !c.srv.handOver(c.rwc, buffered, c.connCtx) {
		return false
	}
	c.releaseBuffer()
	return true
}

// serveRequest builds the request from the head of n bytes at the start of
// the buffer, runs the handler and finishes the response. It reports
// whether the connection stays open for another request; st.handOff asks
// for the connection to go to net/http instead, before anything was
// served.
func (c *conn) serveRequest(st *reqState, n int) bool {
	c.startCtx()
	if d := c.srv.Direct; d != nil && st.head.contentLength == 0 {
		if served, keep := c.serveDirect(d, st, n); served {
			return keep
		}
	}
	if !st.build((*c.buf)[c.r:c.r+n], c.proto) {
		st.handOff = true
		return false
	}
	c.r += n
	r := &st.req
	h := &st.head
	r.ContentLength = h.contentLength
	r.Close = h.close
	r.RemoteAddr = c.remoteAddr
	if h.contentLength > 0 {
		// Not pooled with st: a transport may read the body after the
		// handler returned, and must then find it closed rather than
		// the body of whatever request has st next.
		st.body = new(body)
		st.body.reset(c, h.contentLength, h.close)
		r.Body = st.body
		// Like net/http without a ReadTimeout: a body may take its time.
		c.rwc.SetReadDeadline(time.Time{})
		c.waitDeadline = time.Time{}
	} else {
		r.Body = http.NoBody
		c.armWatch()
	}

	w := &st.resp
	w.reset(c, r.Method == http.MethodHead, st)
	if !c.runHandler(w, r) {
		c.stopWatch()
		w.abort()
		return false
	}
	c.stopWatch()
	w.finish()
	c.linger = w.linger
	return w.reusable()
}

// runHandler calls the handler, reporting false when it panicked: the
// response is then cut off by closing the connection, as net/http does
// (see response.abort).
func (c *conn) runHandler(w *response, r *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			ok = false
			c.logPanic(v)
		}
	}()
	c.srv.hs.Handler.ServeHTTP(w, r)
	return true
}

// logPanic logs a handler's panic v with its stack, as net/http does,
// unless it is http.ErrAbortHandler, which only cuts the response off.
// It must run in the deferred function that recovered v.
func (c *conn) logPanic(v any) {
	if v == http.ErrAbortHandler {
		return
	}
	const size = 64 << 10
	buf := make([]byte, size)
	buf = buf[:runtime.Stack(buf, false)]
	if f := c.srv.OnPanic; f != nil {
		f(c.remoteAddr, v, buf)
		return
	}
	c.srv.logf("h1: panic serving %v: %v\n%s", c.remoteAddr, v, buf)
}

// armWatch has the watcher start, after watchDelay, a read that watches
// for the client going away while its request is served.
func (c *conn) armWatch() {
	c.wmu.Lock()
	c.wArmed = true
	c.wmu.Unlock()
	c.srv.watches.arm(c)
}

func (c *conn) startWatch() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.wArmed || c.wRunning {
		return
	}
	c.wRunning = true
	c.wDone = make(chan struct{})
	// The deadline of the wait for this request (shrinkAfter from its
	// start on a kept-alive connection) may be past: the watch reads
	// without one, as net/http's background read. Under wmu, so that
	// stopWatch's interrupt comes after it.
	c.rwc.SetReadDeadline(time.Time{})
	go c.watchRead(c.wDone)
}

// watchRead reads one byte: an error other than our own deadline means the
// client has gone, and the request's context is canceled; a byte is the
// start of a pipelined request, kept for later.
func (c *conn) watchRead(done chan struct{}) {
	defer close(done)
	n, err := c.rwc.Read(c.wByte[:])
	if h := c.srv.watchRead; h != nil {
		h(n)
	}
	if n == 1 {
		c.wGot = true
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return
	}
	c.cancel()
}

// stopWatch ends the watch of the request that is finishing, waiting for
// its read to stop.
func (c *conn) stopWatch() {
	// Not under wmu: the watcher takes wmu under its own lock.
	c.srv.watches.disarm(c)
	c.wmu.Lock()
	c.wArmed = false
	running, done := c.wRunning, c.wDone
	c.wRunning = false
	c.wmu.Unlock()
	if !running {
		return
	}
	c.rwc.SetReadDeadline(aLongTimeAgo)
	c.waitDeadline = time.Time{}
	<-done
	if c.wGot {
		c.wGot = false
		c.keepByte(c.wByte[0])
	}
}

// keepByte appends b, a byte the watch read, to the buffered bytes. A
// buffer full of bytes not consumed yet (a request declined by the
// Direct handler or cut off by a panic keeps its head there) is replaced
// by a larger one, so the byte is never lost: a pipelined request after it
// would be read shifted by one (RFC 9112 §9.3.2).
func (c *conn) keepByte(b byte) {
	switch {
	case c.buf == nil:
		c.buf = readBuffers.Get().(*[]byte)
		c.r, c.w = 0, 0
	case c.w < len(*c.buf):
	case c.r > 0:
		c.w = copy(*c.buf, (*c.buf)[c.r:c.w])
		c.r = 0
	default:
		nb := make([]byte, len(*c.buf)+1)
		copy(nb, *c.buf)
		putBuffer(c.buf)
		c.buf = &nb
	}
	(*c.buf)[c.w] = b
	c.w++
}
