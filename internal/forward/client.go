package forward

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tbsphathuynh/proxy/internal/donehook"
	"github.com/tbsphathuynh/proxy/internal/reqinfo"
	"github.com/tbsphathuynh/proxy/internal/sched"
)

// client sends body-less plain-HTTP/1.1 requests (the bulk of proxied
// traffic: GET, HEAD) to servers itself, in the goroutine of the request,
// on connections it keeps alive. http.Transport hands every request to
// two goroutines of the connection (a writer and a reader) through
// channels, and pays for a cancel context and a timer each time; doing the
// exchange in place costs about a third less CPU per proxied request (see
// docs/performance.md). The framing is net/http's, reproduced where it
// costs most: the request head is written by writeRequestHead
// (reqwrite.go), which sends the bytes Request.Write would, without its
// allocations; the answer's head, when it is whole in the read buffer and
// plain, is parsed by parseResponseHead (resparse.go) into the response
// http.ReadResponse would make, in a few allocations rather than one per
// header value. Anything outside their plain cases (1xx, chunked, HTTP/1.0,
// answers to HEAD, whatever is odd or malformed) goes to Request.Write and
// http.ReadResponse themselves, and the fuzz tests hold the two paths to
// the same bytes and the same responses.
//
// It is registered on the transport for the "http" scheme
// (Transport.RegisterProtocol) and declines, with http.ErrSkipAltProtocol,
// whatever it does not handle: requests with a body (which need writing
// while the answer may already come), upgrades, and requests that ask to
// close the connection. The transport then does those itself, after
// validating every request's headers either way.
type client struct {
	dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	headerTimeout  time.Duration
	idleTimeout    time.Duration
	maxIdlePerHost int
	maxHeaderBytes int64
	// protocolError, if set, hears of servers' framing errors that failed
	// no request (see UnsolicitedError).
	protocolError func(ctx context.Context, err error)

	// mu guards idle and sweeping.
	mu       sync.Mutex
	idle     map[string][]*pconn // by host:port; most recently used last
	sweeping bool
}

// pconn is a kept-alive connection to a server. Its buffers are borrowed
// only while a request is under way, so an idle connection costs the
// socket and this struct.
type pconn struct {
	net.Conn
	host  string
	since time.Time // idle since
	// sample is the start of bytes a probe found, for a report.
	sample [64]byte
	// read counts bytes read since the request was written, so a failure
	// can tell whether any of the answer had come; limit caps it while the
	// header is read.
	read, limit int64
	// tap keeps what a head read by http.ReadResponse takes (readResponse).
	tap headTap

	// mu orders kill, run when the request's context ends, with a rescue
	// resetting the deadline kill set; killed says kill has run.
	mu     sync.Mutex
	killed bool
	// killFn is kill as a func value, made once per connection rather than
	// once per request.
	killFn func()
	// headerUntil is the read deadline armHeaderTimeout set last, in Unix
	// nanoseconds, while no other deadline has been set since; 0 when
	// unknown.
	headerUntil atomic.Int64

	// The exchange's reads (readBusy): wait is the wait for the
	// server's answer; awaiting says the exchange waits for its first
	// bytes, the only wait that tells how quick the server is (the
	// body's reads follow the server's writes, not its thinking).
	wait     sched.Wait
	awaiting bool
	//lint:ignore U1000 only unix's rawIO has fields to use.
	rawIO
}

// SetDeadline implements net.Conn, forgetting the header deadline.
func (pc *pconn) SetDeadline(t time.Time) error {
	pc.headerUntil.Store(0)
	return pc.Conn.SetDeadline(t)
}

// SetReadDeadline implements net.Conn, forgetting the header deadline.
func (pc *pconn) SetReadDeadline(t time.Time) error {
	pc.headerUntil.Store(0)
	return pc.Conn.SetReadDeadline(t)
}

// armHeaderTimeout has the wait for an answer's head end d after now, or
// up to headerSlack later: a deadline set by an earlier exchange that ends
// in that window stays. Under load a kept-alive connection carries an
// exchange every few milliseconds, and moving the runtime's timer for
// each showed in profiles; the timeout so fires at most headerSlack late,
// never early.
func (pc *pconn) armHeaderTimeout(now time.Time, d time.Duration) {
	want := now.Add(d).UnixNano()
	slack := min(int64(d/8), int64(headerSlack))
	if h := pc.headerUntil.Load(); h >= want && h-want <= slack {
		return
	}
	pc.mu.Lock()
	if !pc.killed {
		pc.Conn.SetReadDeadline(time.Unix(0, want+slack))
		pc.headerUntil.Store(want + slack)
	}
	pc.mu.Unlock()
}

// headerSlack bounds how late armHeaderTimeout lets a header timeout fire.
const headerSlack = 10 * time.Millisecond

// setReadDeadline sets the read deadline unless kill has run: a deadline
// set after it would undo it, and leave a request whose client is gone
// waiting for the header timeout.
func (pc *pconn) setReadDeadline(t time.Time) {
	pc.mu.Lock()
	if !pc.killed {
		pc.SetReadDeadline(t)
	}
	pc.mu.Unlock()
}

// kill makes whatever the connection is doing for a request fail at once:
// the client went away, or a per-try timeout fired.
func (pc *pconn) kill() {
	pc.mu.Lock()
	pc.killed = true
	pc.SetDeadline(aLongTimeAgo)
	pc.mu.Unlock()
}

func (pc *pconn) Read(p []byte) (int, error) {
	if pc.limit > 0 && pc.read >= pc.limit {
		return 0, errHeaderTooLarge
	}
	n, err := pc.readBusy(p)
	pc.read += int64(n)
	if pc.tap.on {
		pc.tap.record(p[:n])
	}
	return n, err
}

var (
	errHeaderTooLarge = errors.New("server's response header too large")
	errUnsolicited101 = errors.New("server switched protocols without being asked")
	errTooMany1xx     = errors.New("too many informational responses")
)

// max1xx bounds the informational answers accepted before the final one.
const max1xx = 8

// defaultMaxHeaderBytes is http.Transport's default response header limit.
const defaultMaxHeaderBytes = 10 << 20

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// registerClient makes t send the requests client handles through it.
func registerClient(t *http.Transport) *client {
	c := &client{
		dial:           t.DialContext,
		headerTimeout:  t.ResponseHeaderTimeout,
		idleTimeout:    t.IdleConnTimeout,
		maxIdlePerHost: t.MaxIdleConnsPerHost,
		maxHeaderBytes: t.MaxResponseHeaderBytes,
		idle:           make(map[string][]*pconn),
	}
	if c.dial == nil {
		c.dial = (&net.Dialer{}).DialContext
	}
	if c.maxIdlePerHost <= 0 {
		c.maxIdlePerHost = http.DefaultMaxIdleConnsPerHost
	}
	if c.maxHeaderBytes <= 0 {
		c.maxHeaderBytes = defaultMaxHeaderBytes
	}
	t.RegisterProtocol("http", c)
	return c
}

// handles reports whether the client takes req rather than the transport.
func handles(req *http.Request) bool {
	return (req.Body == nil || req.Body == http.NoBody) &&
		!req.Close && req.Method != http.MethodConnect &&
		req.Header["Upgrade"] == nil && req.Header["Connection"] == nil
}

// RoundTrip implements http.RoundTripper.
func (c *client) RoundTrip(req *http.Request) (*http.Response, error) {
	if !handles(req) {
		return nil, http.ErrSkipAltProtocol
	}
	return c.roundTrip(req)
}

// roundTrip carries req, which handles has accepted.
func (c *client) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	host := canonicalAddr(req.URL.Host)
	pc, reused, err := c.conn(ctx, host)
	if err != nil {
		return nil, err
	}
	res, err := c.exchange(ctx, pc, req)
	// ctx.Err() first: a failure after the context ended may have left
	// pc to a rescue goroutine, which reads it (and pc.read) on its own.
	if err != nil && reused && ctx.Err() == nil && pc.read == 0 && retryOnFresh(req, err) {
		// The server closed the kept-alive connection as the request went
		// out (RFC 9112 §9.6): nothing was processed, try a new one.
		if pc, err = c.dialConn(ctx, host); err != nil {
			return nil, err
		}
		res, err = c.exchange(ctx, pc, req)
	}
	return res, err
}

// retryOnFresh reports whether a request that failed on a reused
// connection before any answer came may be sent again on a new one, by
// net/http's rule: nothing of it was written, or it is replayable.
func retryOnFresh(req *http.Request, err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	if errors.Is(err, errWrite) {
		return true
	}
	if !isReset(err) {
		return false
	}
	return replayable(req)
}

// replayable reports whether req may be sent again after a failure that
// left unknown whether the server saw it: its method is safe, or the
// client marked it idempotent.
func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header["Idempotency-Key"] != nil || req.Header["X-Idempotency-Key"] != nil
}

var (
	errWrite  = errors.New("writing the request")
	errNoHead = errors.New("forward: a request without a header and no head in its record")
)

// exchange writes req on pc and reads the answer's header. On success the
// response body owns pc; on failure pc is closed.
func (c *client) exchange(ctx context.Context, pc *pconn, req *http.Request) (*http.Response, error) {
	// The request ends when the client goes away or a per-try timeout
	// fires: unblock whatever the connection is doing.
	pc.read, pc.limit, pc.killed = 0, 0, false
	stop := donehook.After(ctx, &pc.killFn)
	var br *bufio.Reader
	fail := func(err error) (*http.Response, error) {
		stopped := stop.Stop()
		if ctx.Err() == nil {
			if br != nil {
				putReader(br)
			}
			pc.Close()
			return nil, err
		}
		if br != nil && pc.read == 0 && !stopped && errors.Is(err, os.ErrDeadlineExceeded) {
			// The request went out whole and its answer has not begun:
			// let it come, and keep the connection.
			hold(req)
			go c.rescue(pc, br, req, nil, nil, true)
		} else {
			if br != nil {
				putReader(br)
			}
			pc.Close()
		}
		return nil, context.Cause(ctx)
	}

	var err error
	if req.Header == nil {
		// The direct lane's request: its head is ready, in the record,
		// and goes out in one write as it is.
		if info := reqinfo.From(ctx); info != nil && info.Head != nil {
			_, err = pc.Write(info.Head)
		} else {
			err = errNoHead
		}
	} else {
		bw := writers.Get().(*bufio.Writer)
		bw.Reset(pc)
		if !writeRequestHead(bw, req) {
			err = req.Write(bw)
		}
		if err == nil {
			err = bw.Flush()
		}
		bw.Reset(nil)
		writers.Put(bw)
	}
	if err != nil {
		return fail(fmt.Errorf("%w: %w", errWrite, err))
	}

	// The server needs a moment to answer: let the goroutines ready to run
	// go first, so the read below usually finds the answer instead of
	// finding nothing and parking (see the same yield in package h1).
	pc.wait.Begin(true)
	pc.awaiting = true
	if c.headerTimeout > 0 {
		pc.armHeaderTimeout(time.Now(), c.headerTimeout)
	}
	br = readers.Get().(*bufio.Reader)
	br.Reset(pc)
	pc.limit = c.maxHeaderBytes
	// The response and its body come in one allocation, reused when the
	// direct lane is done with it (releaseAnswer); an informational answer
	// before the final one gets its own.
	x := answers.Get().(*exchangeResponse)
	fr := &x.fr
	// The direct lane's relay reads the answer's fields, not its map.
	fr.lazy = req.Header == nil
	var res *http.Response
	for n := 0; ; n++ {
		res, err = readResponse(br, req, fr, &pc.tap)
		fr = nil
		if err != nil {
			return fail(err)
		}
		if !informational(res.StatusCode) {
			break
		}
		if res.StatusCode == http.StatusSwitchingProtocols || n == max1xx {
			if res.StatusCode == http.StatusSwitchingProtocols {
				return fail(errUnsolicited101)
			}
			return fail(errTooMany1xx)
		}
		// 1xx: relay it (103 Early Hints), then read on for the final
		// answer.
		if err := got1xx(ctx, res.StatusCode, res.Header); err != nil {
			return fail(err)
		}
	}
	if res.Header != nil && spaceInName(res.Header) {
		return fail(errSpaceBeforeColon)
	}
	pc.limit = 0
	// The header timeout is over. Its deadline stays when the body is
	// already buffered whole, as a small answer's usually is: nothing reads
	// the connection before the next exchange sets a deadline of its own
	// (a probe clears it first, see conn), and moving the runtime's timer
	// twice per request showed in profiles.
	buffered := res.Body == http.NoBody || res.ContentLength >= 0 && int64(br.Buffered()) >= res.ContentLength
	if c.headerTimeout > 0 && !buffered {
		pc.setReadDeadline(time.Time{})
	}
	b := &x.body
	*b = body{c: c, pc: pc, br: br, rc: res.Body, stop: stop, ctx: ctx, res: res, req: req, own: x, keep: !res.Close}
	if res == &x.fr.res && x.fr.hasRaw {
		b.raw = &x.fr
	}
	if res.Body == http.NoBody {
		// Nothing to read (HEAD, 204, 304): the connection is free now.
		b.finish(true)
		return res, nil
	}
	res.Body = b
	return res, nil
}

// informational reports whether code is a 1xx answer that another answer
// follows, as http.Transport frames answers: 100 to 199. A status below
// 100, which http.ReadResponse accepts ("000"), is framed as a final
// answer, for the route to refuse (errBadStatus).
func informational(code int) bool { return code >= 100 && code < 200 }

// got1xx relays an informational answer through the request's client
// trace, or else its record (reqinfo.Info.Informational), where the
// forwarder leaves its relay for this client.
func got1xx(ctx context.Context, code int, h http.Header) error {
	if t := httptrace.ContextClientTrace(ctx); t != nil {
		if t.Got1xxResponse != nil {
			return t.Got1xxResponse(code, textproto.MIMEHeader(h))
		}
		return nil
	}
	if info := reqinfo.From(ctx); info != nil && info.Informational != nil {
		return info.Informational.Got1xx(code, textproto.MIMEHeader(h))
	}
	return nil
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readers.Put(br)
}

// exchangeResponse is the memory of an exchange's answer: the response,
// when parsed in place, and the body wrapping it.
type exchangeResponse struct {
	fr   fastResponse
	body body
}

// answers are exchangeResponses to reuse. At a thousand bytes, one per
// request was most of what a request of the direct lane allocated, and
// the collector's cycles, which slow every goroutine's turn while they
// mark, set our p99 (docs/performance.md).
var answers = sync.Pool{New: func() any { return new(exchangeResponse) }}

// releaseAnswer returns the memory of res, an answer the direct lane
// relayed, for reuse. Only a request's own goroutine calls it, once it is
// done with res, and only when nothing else may hold it: no rescue took
// the exchange over (reqinfo.Info.Held), the body was closed, and the
// header map, whose values would point into it, was never made.
func releaseAnswer(res *http.Response) {
	tb, ok := res.Body.(*trackedBody)
	if !ok {
		return
	}
	b, ok := tb.ReadCloser.(*body)
	if !ok || !b.done || b.own == nil || b.raw != &b.own.fr || res != &b.raw.res || res.Header != nil {
		return
	}
	x := b.own
	*x = exchangeResponse{}
	answers.Put(x)
}

// hold marks req's record held by a rescue, before the rescue starts.
func hold(req *http.Request) {
	if info := reqinfo.From(req.Context()); info != nil {
		info.Held = true
	}
}

// body is a response body read from a kept-alive connection. The
// connection goes back to the pool when the body has been read to its end
// and closed; closed earlier, or broken, the connection is closed.
type body struct {
	c    *client
	pc   *pconn
	br   *bufio.Reader
	rc   io.ReadCloser
	stop donehook.Registration
	ctx  context.Context
	res  *http.Response
	req  *http.Request
	// raw is the parsed head of res, for the direct lane's relay, or nil
	// when res came from http.ReadResponse.
	raw *fastResponse
	// own is the exchangeResponse this body is part of.
	own  *exchangeResponse
	eof  bool
	keep bool // the server did not ask to close
	done bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		return 0, http.ErrBodyReadAfterClose
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		b.keep = false
		if b.ctx.Err() != nil {
			err = context.Cause(b.ctx)
		}
	}
	return n, err
}

func (b *body) Close() error {
	if b.done {
		return nil
	}
	if b.eof {
		b.rc.Close()
	}
	// Not at its end, the body is left unclosed: closing a response body of
	// net/http's reads it to its end first, which for a stream may be
	// never. finish rescues or closes the connection instead.
	b.finish(b.eof)
	return nil
}

// finish returns the connection to the pool when the exchange ended
// cleanly, and closes it otherwise.
func (b *body) finish(complete bool) {
	b.done = true
	// stop reports false when the request's context already ended and
	// poisoned the connection's deadline.
	stopped := b.stop.Stop()
	if complete && b.br.Buffered() > 0 {
		// More than the answer's framing allows came with it.
		b.c.unsolicited(b.ctx, b.pc.host, buffered(b.br))
	}
	if complete && b.keep && stopped && b.br.Buffered() == 0 {
		putReader(b.br)
		b.c.put(b.pc)
		return
	}
	if !complete && b.keep {
		// Closed before its end (the client went away, or was answered
		// otherwise): the rest may well be on its way and small.
		hold(b.req)
		go b.c.rescue(b.pc, b.br, b.req, b.res, b.rc, !stopped)
		return
	}
	putReader(b.br)
	b.pc.Close()
}

// Bounds of a rescue: how long it waits for the rest of an abandoned
// answer, and how much of it it reads.
const (
	rescueTimeout = 500 * time.Millisecond
	rescueLimit   = 64 << 10
)

// rescue saves the connection of an exchange abandoned midway, by the
// client going away or a per-try timeout: it reads the rest of the answer
// (from its start when res is nil, else the rest of rest) and pools the
// connection if that ends cleanly, soon and small; otherwise it closes it.
// killing says the request's context ended and its kill has started.
// Without it, every client that leaves mid-request costs a connection to
// the server, and a benchmark's or a browser's burst of aborts becomes a
// burst of new connections. It runs on its own goroutine, bounded by
// rescueTimeout.
func (c *client) rescue(pc *pconn, br *bufio.Reader, req *http.Request, res *http.Response, rest io.Reader, killing bool) {
	ok := false
	defer func() {
		putReader(br)
		if ok {
			c.put(pc)
		} else {
			pc.Close()
		}
	}()
	// The context's kill has started (its AfterFunc said so): let it
	// finish before the deadline is reset, or it would cut the rescue
	// short, or worse, the next request on the connection.
	for {
		pc.mu.Lock()
		if pc.killed || !killing {
			pc.SetDeadline(time.Now().Add(rescueTimeout))
			pc.mu.Unlock()
			break
		}
		pc.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	pc.limit = c.maxHeaderBytes
	for n := 0; res == nil || informational(res.StatusCode); n++ {
		var err error
		if res, err = http.ReadResponse(br, req); err != nil || n == max1xx || res.StatusCode == http.StatusSwitchingProtocols {
			return
		}
		rest = res.Body
	}
	pc.limit = 0
	if n, err := io.CopyN(io.Discard, rest, rescueLimit+1); n > rescueLimit || err != io.EOF {
		return
	}
	if br.Buffered() > 0 {
		c.unsolicited(req.Context(), pc.host, buffered(br))
		return
	}
	if res.Close || pc.SetDeadline(time.Time{}) != nil {
		return
	}
	ok = true
}

// probeState is what a look at a pooled connection found (pconn.probe).
type probeState uint8

const (
	probeReusable probeState = iota
	probeClosed
	probeUnsolicited
)

// conn returns a kept-alive connection to host, or a new one. Every
// reused connection is looked at first, whatever the request and however
// briefly it sat in the pool: one the server has closed is dropped, and
// one holding bytes nobody asked for (a body after an answer to HEAD, or
// after a 204 or 304, or longer than its Content-Length) is dropped and
// reported, since read by the next exchange they would become its
// answer, a response meant for another client (RFC 9112 §6.3).
func (c *client) conn(ctx context.Context, host string) (pc *pconn, reused bool, err error) {
	for {
		c.mu.Lock()
		list := c.idle[host]
		pc = nil
		for len(list) > 0 {
			pc = list[len(list)-1]
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			if c.idleTimeout > 0 && time.Since(pc.since) >= c.idleTimeout {
				pc.Close()
				pc = nil
				continue
			}
			break
		}
		c.idle[host] = list
		c.mu.Unlock()
		if pc == nil {
			break
		}
		state, n := pc.probe(pc.sample[:])
		if state == probeReusable {
			return pc, true, nil
		}
		pc.Close()
		if state == probeUnsolicited {
			c.unsolicited(ctx, host, pc.sample[:n])
		}
	}
	pc, err = c.dialConn(ctx, host)
	return pc, false, err
}

// UnsolicitedError reports bytes a server sent on a kept-alive connection
// outside any answer: after an answer's end, or while the connection sat
// idle. The connection is closed, never reused; a request that found it
// went on over another.
type UnsolicitedError struct {
	// Host is the server's address.
	Host string
	// Start is the first bytes, for the log.
	Start []byte
}

func (e *UnsolicitedError) Error() string {
	return fmt.Sprintf("server %s sent %q on a kept-alive connection outside any answer", e.Host, e.Start)
}

// unsolicited reports a server's stray bytes through the transport's
// hook, with the context of the request that found them.
func (c *client) unsolicited(ctx context.Context, host string, start []byte) {
	if c.protocolError != nil {
		c.protocolError(ctx, &UnsolicitedError{Host: host, Start: bytes.Clone(start)})
	}
}

func (c *client) dialConn(ctx context.Context, host string) (*pconn, error) {
	conn, err := c.dial(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	pc := &pconn{Conn: conn, host: host}
	pc.killFn = pc.kill
	pc.useRaw()
	return pc, nil
}

// buffered is the start of what br holds unread, for a report.
func buffered(br *bufio.Reader) []byte {
	b, _ := br.Peek(min(br.Buffered(), 64))
	return b
}

// put keeps pc for the next request to its host, unless it is a
// connection that conn could not look at before reusing it.
func (c *client) put(pc *pconn) {
	if !probeConn(pc.Conn) {
		pc.Close()
		return
	}
	pc.since = time.Now()
	c.mu.Lock()
	list := c.idle[pc.host]
	if len(list) >= c.maxIdlePerHost {
		c.mu.Unlock()
		pc.Close()
		return
	}
	c.idle[pc.host] = append(list, pc)
	sweep := c.idleTimeout > 0 && !c.sweeping
	c.sweeping = c.sweeping || sweep
	c.mu.Unlock()
	if sweep {
		time.AfterFunc(c.idleTimeout, c.sweep)
	}
}

// sweep closes connections idle for longer than the idle timeout, and
// comes back while any are left: a pool that stops being used empties.
func (c *client) sweep() {
	now := time.Now()
	var expired []*pconn
	c.mu.Lock()
	left := 0
	for host, list := range c.idle {
		keep := list[:0]
		for _, pc := range list {
			if now.Sub(pc.since) >= c.idleTimeout {
				expired = append(expired, pc)
			} else {
				keep = append(keep, pc)
			}
		}
		clear(list[len(keep):])
		if len(keep) == 0 {
			delete(c.idle, host)
		} else {
			c.idle[host] = keep
		}
		left += len(keep)
	}
	c.sweeping = left > 0
	c.mu.Unlock()
	for _, pc := range expired {
		pc.Close()
	}
	if left > 0 {
		time.AfterFunc(c.idleTimeout, c.sweep)
	}
}

// closeIdle closes every idle connection.
func (c *client) closeIdle() {
	c.mu.Lock()
	idle := c.idle
	c.idle = make(map[string][]*pconn)
	c.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			pc.Close()
		}
	}
}

// canonicalAddr adds the default port to a URL host without one.
func canonicalAddr(host string) string {
	if _, port, err := net.SplitHostPort(host); err == nil && port != "" {
		return host
	}
	if len(host) > 0 && host[0] == '[' && host[len(host)-1] == ']' {
		return host + ":80"
	}
	return net.JoinHostPort(host, "80")
}

// aLongTimeAgo is a deadline in the past: it makes any blocked or future
// I/O on a connection fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// isReset reports whether err says the server closed or reset the
// connection.
func isReset(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
