// Package forward is the proxy handler: it picks a server for each request,
// relays the exchange over a pooled http.Transport, and answers for the
// server when none can.
//
// The relay is our own rather than httputil.ReverseProxy: it does the same
// work (hop-by-hop headers, X-Forwarded-*, 1xx, trailers, upgrades,
// flushing streams) with about a fifth of the allocations per request,
// which on a proxy that does little else is most of its own cost; see
// docs/performance.md.
package forward

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tbsphathuynh/proxy/internal/grpcwire"
	"github.com/tbsphathuynh/proxy/internal/localfault"
	"github.com/tbsphathuynh/proxy/internal/reqinfo"
	"github.com/tbsphathuynh/proxy/upstream"
)

// Picker chooses a server among the available ones; balancer.Policy
// satisfies it.
type Picker interface {
	Pick(servers []*upstream.Server, r *http.Request) *upstream.Server
}

// Observer learns the outcome of every attempt on a server: passive health,
// latency tracking and metrics hang off it. status is 0 when err is set.
type Observer interface {
	Observe(s *upstream.Server, status int, err error, d time.Duration)
}

// Upstream forwards requests to the servers of one pool. It is an
// http.RoundTripper: it chooses the server for each outgoing request, so a
// retry on another server happens before any byte of a response reaches
// the client.
type Upstream struct {
	Name   string
	Pool   *upstream.Pool
	Picker Picker
	// Transport carries requests to servers; it owns the keep-alive pools.
	Transport http.RoundTripper
	// Observer may be nil.
	Observer Observer
	// Retry says when a failed attempt is tried on another server.
	Retry RetryPolicy
	// RetryAfter is sent with 503 answers when no server is available.
	RetryAfter string

	// direct is Transport's client of ours, once looked up (see client).
	direct atomic.Pointer[client]
	// pause, when set, replaces sleep's timer: tests see the waits.
	pause func(ctx context.Context, d time.Duration) error
}

// Route is the handler of one route: it rewrites the request for the
// upstream and relays the exchange.
type Route struct {
	name        string
	stripPrefix string
	up          *Upstream
	fallback    http.Handler
	log         *slog.Logger
	// upgrades are the protocols clients may switch to (AllowUpgrades).
	upgrades []string
	hooks    Hooks
	// localLog spaces the log lines of requests failed by a local fault.
	localLog localfault.Every
}

// Hooks let a custom build see and change what the route relays, as
// httputil.ReverseProxy's ModifyResponse and ErrorHandler do.
type Hooks struct {
	// ModifyResponse, if set, sees each server's answer before any of it
	// is relayed (not 1xx answers, not a 101 that opens a tunnel), and
	// may change its status, header and body. An error drops the answer
	// and the route answers 502 as for a server that broke (or
	// ErrorHandler does).
	ModifyResponse func(*http.Response) error
	// ErrorHandler, if set, answers in place of the proxy's own answer
	// (status: 502, 503, 504, or 400, 408, 499 for a client's broken
	// body) when no server's answer can be relayed and the route has no
	// fallback. err says why; it is for logs, not for the client.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, status int, err error)
}

// SetHooks sets the route's hooks. A route with hooks is not offered
// to the direct lane, whose relay passes a server's head as raw lines.
func (rt *Route) SetHooks(h Hooks) { rt.hooks = h }

// Label writes the route's and its upstream's names into a request's
// record (nil is fine), as ServeHTTP does: a handler in front of the
// route that may answer for it, such as its rate limit, calls it first,
// so that its answer is logged and counted under the route too.
func (rt *Route) Label(info *reqinfo.Info) {
	if info != nil {
		info.Route = rt.name
		info.Upstream = rt.up.Name
	}
}

// AllowUpgrades sets the protocols a client may switch to through the
// route (Connection: Upgrade), compared without regard to case; none
// until it is called. Another upgrade is forwarded as an ordinary
// request, without its Upgrade and Connection tokens. h2c is never
// tunnelled, listed or not: RFC 9113 §3.1 deprecates that upgrade, and
// its tunnel would carry requests past routing and limits.
func (rt *Route) AllowUpgrades(protocols []string) { rt.upgrades = protocols }

// upgradable reports whether a client may switch to protocol.
func (rt *Route) upgradable(protocol string) bool {
	if strings.EqualFold(protocol, "h2c") {
		return false
	}
	for _, p := range rt.upgrades {
		if strings.EqualFold(p, protocol) {
			return true
		}
	}
	return false
}

// NewRoute returns the handler for a route named name that sends to up.
// When stripPrefix is set, it is removed from the path before forwarding.
func NewRoute(name string, up *Upstream, stripPrefix string, log *slog.Logger) *Route {
	return &Route{name: name, stripPrefix: strings.TrimSuffix(stripPrefix, "/"), up: up, log: log}
}

// outbound is everything one forwarded request needs that must outlive
// nothing but the exchange, in one allocation: the outgoing request, the
// URL the server gets,
// the values of the headers the proxy sets, the in-flight tracker of the
// response body, and the 1xx relay.
type outbound struct {
	req  http.Request
	url  url.URL
	body guardedBody
	tb   trackedBody

	xff, xfh, rid [1]string

	// The transport calls Got1xx from its own goroutine while the handler
	// waits in RoundTrip; mu makes sure no 1xx touches the response once
	// RoundTrip has returned.
	mu   sync.Mutex
	done bool
	w    http.ResponseWriter
	// http10: the client speaks HTTP/1.0, which has no informational
	// answers; a server MUST NOT send it one (RFC 9110 §15.2).
	http10 bool
}

// ServeHTTP implements http.Handler.
func (rt *Route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info := reqinfo.From(r.Context())
	requestID := ""
	if info != nil {
		info.Route = rt.name
		info.Upstream = rt.up.Name
		if rt.fallback != nil && info.Request == nil {
			info.Request = r
		}
		requestID = info.RequestID
	}

	upType := upgradeType(r.Header)
	if upType != "" && !rt.upgradable(upType) {
		// Forwarded as an ordinary request: Upgrade and Connection are
		// hop-by-hop, so outHeader drops them and the tokens Connection
		// lists (HTTP2-Settings with h2c).
		upType = ""
	}
	if !printable(upType) {
		rt.fail(w, r, errBadUpgrade)
		return
	}

	ob := &outbound{w: w, http10: !r.ProtoAtLeast(1, 1)}
	ob.url = *r.URL
	ob.url.RawQuery = cleanQuery(ob.url.RawQuery)
	if rt.stripPrefix != "" {
		ob.url.Path = strip(ob.url.Path, rt.stripPrefix)
		if ob.url.RawPath != "" {
			ob.url.RawPath = strip(ob.url.RawPath, rt.stripPrefix)
		}
	}

	// Informational answers (103 Early Hints, 102) reach the proxy only
	// through a client trace. With a request record, ob rides in it as the
	// relay and the outgoing request is a shallow copy of the client's
	// inside ob (see reqinfo.Info.Informational); without, a context
	// carries a trace.
	var out *http.Request
	if info != nil {
		info.Informational = ob
		ob.req = *r
		out = &ob.req
	} else {
		trace := &httptrace.ClientTrace{Got1xxResponse: ob.Got1xx}
		out = r.WithContext(httptrace.WithClientTrace(r.Context(), trace))
	}
	out.URL = &ob.url
	out.Header = ob.outHeader(r, requestID, upType)
	out.RequestURI = ""
	out.Close = false // the client's Connection: close is about its own hop
	if r.ContentLength == 0 {
		// No body: the transport may then retry on a fresh connection
		// (golang/go#16036).
		out.Body = nil
	} else if r.Body != nil {
		// The transport closes the body it sends when it fails; closing the
		// client's body could block on a 100-continue that never comes.
		ob.body.rc = r.Body
		out.Body = &ob.body
		defer ob.body.closed.Store(true) // no read after the handler returns (golang/go#46866)
		defer ob.body.record(info)
		if probes(r) {
			if err := ob.body.probe(probeWait); err != nil {
				// Broken before any server saw the request: no server
				// is picked, contacted or blamed.
				rt.fail(w, r, err)
				return
			}
		}
	}

	if grpcwire.IsCall(r.Header) {
		if info != nil {
			info.GRPC, info.GRPCStatus = true, grpcwire.NoStatus
		}
		var cancel context.CancelFunc
		if out, cancel = withGRPCTimeout(out); cancel != nil {
			defer cancel()
		}
	}
	rt.exchange(w, r, out, ob, info, upType)
}

// exchange sends out, the request r as the server gets it, and relays the
// answer, or answers for the server when it cannot.
func (rt *Route) exchange(w http.ResponseWriter, r, out *http.Request, ob *outbound, info *reqinfo.Info, upType string) {
	res, err := rt.up.roundTrip(out, info, &ob.tb)
	ob.mu.Lock()
	ob.done = true
	ob.mu.Unlock()
	if err != nil {
		rt.fail(w, r, err)
		recycle(info, out.Header, nil)
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		if upType == "" {
			// Nothing was asked for: a tunnel here would carry bytes no
			// routing or limit sees.
			res.Body.Close()
			rt.fail(w, r, errUnsolicited101)
			return
		}
		rt.upgrade(w, r, res, upType)
		return
	}
	if res.StatusCode < 100 {
		// RFC 9110 §15: a status code's first digit is 1 to 5 (6 to 9 are
		// used privately and relayed); http.ReadResponse takes "000" as
		// 0, which no client can be sent.
		res.Body.Close()
		rt.fail(w, r, errBadStatus)
		return
	}
	if rt.hooks.ModifyResponse != nil {
		if err := rt.hooks.ModifyResponse(res); err != nil {
			res.Body.Close()
			rt.fail(w, r, &modifyResponseError{err})
			recycle(info, out.Header, nil)
			return
		}
	}
	if info != nil && info.GRPC || info == nil && grpcwire.IsCall(r.Header) {
		rt.relayGRPC(w, r, res, out, info)
	} else {
		rt.relay(w, r, res, info)
	}
	recycle(info, out.Header, res.Header)
	if info != nil && !info.Held {
		releaseAnswer(res)
	}
}

// outHeaders are outgoing header maps, reused once an exchange is over.
// They start at one group of Go's maps, as h1's do (see its states).
var outHeaders = sync.Pool{New: func() any { return make(http.Header, 8) }}

// recycle returns the exchange's header maps to their pools, the outgoing
// one and the relayed response's (nil when there is none), when only this
// package's client saw them: that client is done with a request once its
// answer is read, and the response's values went to the client's header
// sharing the strings. When another goroutine may still hold them
// (reqinfo.Info.Held: http.Transport, or a rescue), they are left to the
// collector, as are response maps too big for the pool's size.
func recycle(info *reqinfo.Info, out, res http.Header) {
	if info == nil || info.Held {
		return
	}
	if out != nil {
		clear(out)
		outHeaders.Put(out)
	}
	if res != nil && len(res) <= pooledHeaderKeys {
		clear(res)
		responseHeaders.Put(res)
	}
}

// Got1xx relays an informational response to the client. The headers it
// carries are for it alone, so the response's own headers are restored
// afterwards.
func (ob *outbound) Got1xx(code int, header textproto.MIMEHeader) error {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.done || ob.http10 {
		return nil
	}
	h := ob.w.Header()
	saved := h.Clone()
	copyResponseHeader(h, http.Header(header))
	// HTTP/2 sends an informational answer from the handler's own map
	// unless the map holds a framing key, and may still be reading it after
	// WriteHeader returned early for a reset stream, as this function goes
	// on to change it. With a Content-Length key it sends from a copy.
	// Every writer leaves that key out of an informational answer.
	h["Content-Length"] = informationalLength
	ob.w.WriteHeader(code)
	clear(h)
	for k, v := range saved {
		h[k] = v
	}
	return nil
}

// informationalLength is the placeholder Got1xx puts in the header of an
// informational answer; it is never sent.
var informationalLength = []string{"0"}

func (rt *Route) fail(w http.ResponseWriter, r *http.Request, err error) {
	if info := reqinfo.From(r.Context()); info != nil {
		info.Err = err
	}
	if le := (*localfault.Error)(nil); errors.As(err, &le) {
		rt.logLocal(le)
	}
	status := StatusFor(err)
	if rt.tryFallback(w, r, status) {
		return
	}
	if rt.hooks.ErrorHandler != nil {
		rt.hooks.ErrorHandler(w, r, status, err)
		return
	}
	if grpcwire.IsCall(r.Header) {
		WriteGRPCError(w, r, err)
		return
	}
	WriteError(w, err, rt.up.RetryAfter)
}

// logLocal says, at most once a second per route, that requests failed
// for want of the proxy's own resources, and how many did: under such a
// shortage every request would log otherwise.
func (rt *Route) logLocal(le *localfault.Error) {
	ok, n := rt.localLog.Allow(time.Now())
	if !ok || rt.log == nil {
		return
	}
	rt.log.LogAttrs(context.Background(), slog.LevelWarn, "local fault: request answered 503",
		slog.String("route", rt.name), slog.String("upstream", rt.up.Name),
		slog.String("reason", le.Reason), slog.String("cause", localfault.Describe(le.Reason)),
		slog.Int("requests", n), slog.String("err", le.Err.Error()))
}

// strip removes prefix from path, keeping a leading slash.
func strip(path, prefix string) string {
	rest, ok := strings.CutPrefix(path, prefix)
	if !ok {
		return path
	}
	if rest == "" || rest[0] != '/' {
		return "/" + rest
	}
	return rest
}

// guardedBody is the client's request body as the transport sees it:
// Close does not close the client's body, reads fail once the handler
// has returned, and a read that fails is marked as the client's fault
// (clientBodyError), so that StatusFor, the retries and the observers
// blame the client and not the server the body was going to.
type guardedBody struct {
	rc interface {
		Read([]byte) (int, error)
	}
	closed atomic.Bool
	// failed is the first failed read of the client's body: whatever error
	// the transport then reports (the client's context canceled by the
	// same broken connection, a write cut short), the attempt failed for
	// the client, and this is why.
	failed atomic.Pointer[clientBodyError]
	// early is the start of the body that probe read, handed out first;
	// nil once it is (or without a probe). Only the reader touches it.
	early *earlyRead
	// n counts the bytes handed out, for the server's bytes in. Atomic:
	// the transport reads from its own goroutine, and may still be at it
	// when the handler records the count.
	n atomic.Int64
}

func (b *guardedBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errBodyAfterReturn
	}
	if e := b.early; e != nil {
		<-e.done
		if e.off < e.n {
			n := copy(p, (*e.buf)[e.off:e.n])
			e.off += n
			b.n.Add(int64(n))
			return n, nil
		}
		b.early = nil
		e.release()
		if e.err != nil {
			return 0, b.blame(e.err)
		}
	}
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	if err != nil {
		err = b.blame(err)
	}
	return n, err
}

// record notes in info how much of the client's body was read: once,
// whatever the number of tries, since a retry resends a kept copy.
func (b *guardedBody) record(info *reqinfo.Info) {
	if info != nil {
		info.RequestBytes = b.n.Load()
	}
}

// blame marks a read error of the client's body as the client's fault;
// io.EOF, the body's normal end, stays as it is.
func (b *guardedBody) blame(err error) error {
	if err == io.EOF {
		return err
	}
	e := &clientBodyError{err}
	b.failed.CompareAndSwap(nil, e)
	return e
}

func (b *guardedBody) Close() error { return nil }

// probeWait bounds how long probe waits for the start of a body, as
// net/http's transport bounds its own probe of a body of unknown length
// (golang/go#17480): a client may send its body only after the answer's
// head, and must not wait on the proxy for long.
const probeWait = 200 * time.Millisecond

// probes reports whether r's body is worth reading a little of before
// any server is contacted: an HTTP/1 chunked body, whose framing the
// client may have got wrong from its first line, as in issue 16's
// "zz\r\n" chunk size. Not with Expect: 100-continue, where reading
// would tell the client to go on before the server was asked; not over
// HTTP/2, which has no chunks and whose streams may wait for the answer.
func probes(r *http.Request) bool {
	return r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 && r.ContentLength < 0 &&
		r.Header["Expect"] == nil
}

// probe reads the start of the body, waiting at most wait for it, before
// the request goes to a server: a body already broken (bad chunk size,
// connection lost) is refused with the error StatusFor answers for, and
// no server ever sees its head, as nginx and HAProxy refuse it. What it
// read is handed out first by Read; a read not done in time goes on, and
// Read waits for it. The reading goroutine ends when its read does: at
// the latest when the client's connection closes, as a transport's read
// of the body would.
func (b *guardedBody) probe(wait time.Duration) error {
	e := &earlyRead{done: make(chan struct{}), buf: probeBuffers.Get().(*[]byte)}
	go func() {
		defer close(e.done)
		e.n, e.err = b.rc.Read(*e.buf)
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-e.done:
	case <-t.C:
		// A read that ended as the wait did still counts.
		select {
		case <-e.done:
		default:
			b.early = e
			return nil
		}
	}
	if e.err != nil && e.err != io.EOF {
		e.release()
		return b.blame(e.err)
	}
	b.early = e
	return nil
}

// earlyRead is the one read probe made.
type earlyRead struct {
	done   chan struct{} // closed once n and err are set
	buf    *[]byte
	n, off int
	err    error
}

func (e *earlyRead) release() {
	if e.buf != nil {
		probeBuffers.Put(e.buf)
		e.buf = nil
	}
}

// probeBuffers hold what probe reads: the first chunk as far as the
// client's connection had it, which net/http's chunked reader returns
// without waiting for more.
var probeBuffers = sync.Pool{New: func() any { b := make([]byte, 4<<10); return &b }}

// bodyFailure returns the error of the first failed read of the client's
// body during the attempt that carried req, or nil.
func bodyFailure(req *http.Request) error {
	var g *guardedBody
	switch b := req.Body.(type) {
	case *guardedBody:
		g = b
	case *joinedBody:
		g, _ = b.Closer.(*guardedBody)
	case *callTape:
		g, _ = b.rc.(*guardedBody)
	}
	if g == nil {
		return nil
	}
	if e := g.failed.Load(); e != nil {
		return e
	}
	return nil
}
