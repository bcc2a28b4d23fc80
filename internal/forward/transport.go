package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"runtime"
	"strconv"
	"sync"
	"time"
	"weak"

	"github.com/tbsphathuynh/proxy/internal/grpcwire"
	"github.com/tbsphathuynh/proxy/internal/localfault"
	"github.com/tbsphathuynh/proxy/internal/reqinfo"
	"github.com/tbsphathuynh/proxy/upstream"
)

// Timeouts bound the exchange with servers.
type Timeouts struct {
	Connect        time.Duration
	ResponseHeader time.Duration
	IdleConnection time.Duration
}

// TransportOptions are NewTransport's choices beyond timeouts; the zero
// value is the fast default.
type TransportOptions struct {
	// NetHTTPOnly leaves every request to http.Transport, registering no
	// client of this package (client.fast_path: false).
	NetHTTPOnly bool
	// ProtocolError, if set, hears of a server's breach of HTTP framing that failed
	// no request, such as an *UnsolicitedError, with the context of the
	// request that came upon it (its reqinfo record names the upstream and
	// server). It is called on the request's goroutine, or on a rescue's,
	// and must not block.
	ProtocolError func(ctx context.Context, err error)
	// Protocol is what the transport speaks to servers (see
	// setProtocol): "http1", "h2c", "h2", or "auto" (also ""), HTTP/2
	// where an https server offers it through ALPN.
	Protocol string
}

// NewTransport returns a transport tuned for a reverse proxy: large
// keep-alive pools per server so connections are reused, not churned, and
// no transparent compression, so bodies pass through untouched. Body-less
// requests to plain-HTTP servers go through this package's own client
// (client.go), registered on the transport where the platform lets it
// look at idle connections; close idle connections with
// CloseIdleConnections, which reaches both.
func NewTransport(t Timeouts, o TransportOptions) *http.Transport {
	d := &net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		// The transport's connections keep the start of each answer, to
		// find again what a closing answer's Connection field named
		// (connection.go).
		DialContext:           dialHeads(d.DialContext),
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       t.IdleConnection,
		ResponseHeaderTimeout: t.ResponseHeader,
		TLSHandshakeTimeout:   t.Connect,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
	setProtocol(tr, o.Protocol)
	if o.NetHTTPOnly || !probeSupported || o.Protocol == "h2c" {
		// An h2c server would not understand our client's HTTP/1.1.
		return tr
	}
	c := registerClient(tr)
	// Our client reads its answers' heads itself, and plain sockets
	// through their descriptors (useRaw): it dials them unwrapped.
	c.dial = d.DialContext
	c.protocolError = o.ProtocolError
	clients.Store(weak.Make(tr), c)
	// Forget the client when the transport is gone (tests build many).
	runtime.AddCleanup(tr, func(k weak.Pointer[http.Transport]) {
		if c, ok := clients.LoadAndDelete(k); ok {
			c.(*client).closeIdle()
		}
	}, weak.Make(tr))
	return tr
}

// clients finds the client registered on a transport made by NewTransport.
var clients sync.Map // weak.Pointer[http.Transport] → *client

// CloseIdleConnections closes the idle connections of t and of the client
// NewTransport registered on it; t.CloseIdleConnections alone reaches only
// the transport's own.
func CloseIdleConnections(t *http.Transport) {
	t.CloseIdleConnections()
	if c, ok := clients.Load(weak.Make(t)); ok {
		c.(*client).closeIdle()
	}
}

// maxTried bounds the servers one request tries; it sizes a stack array so
// tracking them does not allocate.
const maxTried = 8

// RoundTrip sends req to a server of the pool, trying others when that is
// safe, and returns the first response obtained.
func (u *Upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	return u.roundTrip(req, reqinfo.From(req.Context()), nil)
}

// roundTrip is RoundTrip with the request's record (or nil) at hand, and
// optionally the tracker for the response body, which the route allocates
// with everything else of the request.
func (u *Upstream) roundTrip(req *http.Request, info *reqinfo.Info, tb *trackedBody) (*http.Response, error) {
	rp := &u.Retry
	if rp.Budget != nil {
		rp.Budget.Request(time.Now())
	}
	var tape *callTape
	retryCalls := false
	if rp.Attempts > 0 && len(rp.OnGRPCStatus) > 0 && grpcwire.IsCall(req.Header) {
		retryCalls = true
		if req.Body != nil && req.Body != http.NoBody {
			tape = &callTape{rc: req.Body, limit: rp.MaxBodyBytes}
			req.Body = tape
		}
	} else if rp.Attempts > 0 && !grpcwire.IsCall(req.Header) {
		// Not a gRPC call's stream: its client may wait for an answer
		// before it sends more, and must not wait on the proxy reading
		// ahead.
		if err := rp.replayable(req); err != nil {
			// The body broke while it was being read for replay: no
			// server was picked, and none is blamed.
			return nil, err
		}
	}
	var tried [maxTried]*upstream.Server
	n := 0
	path, rawPath := req.URL.Path, req.URL.RawPath
	var s *upstream.Server
	if info != nil && info.Affinity != "" {
		s = u.pickAffine(info.Upstream, info.Affinity)
	}
	if s == nil {
		s = u.pick(req, nil)
	}
	if s == nil {
		return nil, ErrNoServer
	}
	for attempt := 0; ; attempt++ {
		tried[n] = s
		n++
		target(req, s, path, rawPath)
		if info != nil {
			info.Server = s.Name
		}
		resp, err := u.try(req, s, tb)

		// Decide whether another server gets a go: only while attempts and
		// budget last, another server is there, and the failure is one a
		// retry cannot make worse.
		var next *upstream.Server
		wait := time.Duration(-1) // a server's pushback, when >= 0
		switch {
		case n >= maxTried:
		case attempt < rp.Attempts:
			if err == nil {
				if rp.retryStatus(resp.StatusCode) && idempotent(req.Method) {
					next = u.pick(req, tried[:n])
				} else if retryCalls && req.Context().Err() == nil {
					var ok bool
					if wait, ok = rp.retryCall(req, resp, tape); ok {
						next = u.pick(req, tried[:n])
					}
				}
			} else if retriable(req, err) {
				next = u.pick(req, tried[:n])
			}
		case err != nil && req.Context().Err() == nil && !blameless(err) && (isDialError(err) || idempotent(req.Method) && isReset(err)):
			// No connection to the server could be made, so nothing of the
			// request reached it: another server gets it whatever the
			// method and whatever retries.attempts says; or an idempotent
			// request found its connection closed or reset before any
			// answer (a server going away under it). nginx's default
			// proxy_next_upstream (error) does both; each server once.
			next = u.pick(req, tried[:n])
		}
		if next != nil && (!u.mayRetry() || !rewind(req) && !unsentCall(req, err)) {
			next.Release()
			next = nil
		}
		if next == nil {
			if info != nil && localfault.Is(err) {
				// No server was reached: the answer is the proxy's own,
				// and the server is not named where it would be blamed
				// (per-server metrics).
				info.Server = ""
			}
			return resp, err
		}
		if err == nil {
			// The client sees none of this response: drain a little so the
			// connection may be reused, and let another server answer.
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		var paused error
		if wait >= 0 {
			paused = u.sleep(req.Context(), wait)
		} else {
			paused = rp.wait(req.Context(), attempt+1)
		}
		if paused != nil {
			next.Release()
			return nil, context.Canceled
		}
		if info != nil {
			info.Retries++
		}
		s = next
	}
}

// mayRetry asks the budget for one more retry.
func (u *Upstream) mayRetry() bool {
	if u.Retry.Budget == nil {
		return true
	}
	return u.Retry.Budget.Allow(time.Now())
}

// try makes one attempt on server s, which pick has already counted as in
// flight; it stays so until the response body is closed.
func (u *Upstream) try(req *http.Request, s *upstream.Server, tb *trackedBody) (*http.Response, error) {
	out := req
	var cancel context.CancelFunc
	var timer *time.Timer
	if d := u.Retry.PerTryTimeout; d > 0 {
		// The deadline covers the wait for response headers only; once they
		// arrive the body streams for as long as it takes.
		var ctx context.Context
		ctx, cancel = context.WithCancel(req.Context())
		timer = time.AfterFunc(d, cancel)
		out = req.WithContext(ctx)
	}
	start := time.Now()
	resp, err := u.send(out)
	if timer != nil && !timer.Stop() && err == nil {
		// The timeout fired as the head came: its cancel has ended, or
		// is ending, the exchange the body would be read from, and a
		// client relayed this answer would get its head and a cut body.
		// It is the timeout's, as if the head had come a moment later.
		resp.Body.Close()
		resp, err = nil, errPerTryTimeout
	}
	if err != nil && req.Context().Err() == nil && errors.Is(err, context.Canceled) {
		if cancel != nil && out.Context().Err() != nil {
			err = errPerTryTimeout
		} else {
			// Canceled, with neither the client gone nor a per-try
			// timeout: http.Transport says so now and then while
			// reloads run beside it. The client is there and must get an
			// answer: taken as 499, it would get an empty 200 from
			// net/http, which ends a response its handler never began.
			err = fmt.Errorf("%w: %w", errTransportCanceled, err)
		}
	}
	if err != nil {
		if be := bodyFailure(req); be != nil {
			// The client's body failed, and the transport may report
			// what followed instead: the request's context canceled as
			// net/http saw the client's connection end, a connection it
			// tore down. The attempt failed for the client, and why.
			err = be
		} else {
			// Out of descriptors, buffers or ports: the proxy's own
			// fault, whichever server the attempt was for.
			err = localfault.Wrap(err)
		}
	}
	// Only the server's own failures reach passive health, the breaker and
	// the latency average: an attempt the client broke or left, or that the
	// proxy's own resources failed, says nothing about the server.
	if u.Observer != nil && !blameless(err) && !errors.Is(err, errTransportCanceled) {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		u.Observer.Observe(s, status, err, time.Since(start))
	}
	if err != nil {
		if cancel != nil {
			cancel()
		}
		s.Release()
		return nil, err
	}
	resp.Body = track(resp.Body, s, cancel, tb)
	return resp, nil
}

// send carries one attempt. A body-less plain-HTTP request on a transport
// made by NewTransport goes straight to this package's client, which the
// transport would pick anyway after checks (scheme, header validity) that
// the requests the forwarder builds always pass.
func (u *Upstream) send(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && handles(req) {
		if c := u.client(); c != nil {
			return c.roundTrip(req)
		}
	}
	if req.Header == nil {
		// The direct lane's request has its head in its record, which only
		// our client writes; DirectCapable keeps such requests from here.
		return nil, errNoHead
	}
	ctx := req.Context()
	// http.Transport finds a client trace only in the context: one tells
	// the connection the answer comes on (connWatch), and relays 1xx
	// answers when the request's record has a relay and the context no
	// trace of its own.
	var watch *connWatch
	if _, ok := u.Transport.(*http.Transport); ok {
		watch = newConnWatch()
	}
	var got1xx func(int, textproto.MIMEHeader) error
	if info := reqinfo.From(ctx); info != nil {
		info.Held = true // http.Transport may hold on to req after it returns
		if info.Informational != nil && httptrace.ContextClientTrace(ctx) == nil {
			got1xx = info.Informational.Got1xx
		}
	}
	switch {
	case watch != nil:
		watch.trace.Got1xxResponse = got1xx
		req = req.WithContext(httptrace.WithClientTrace(ctx, &watch.trace))
	case got1xx != nil:
		req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{Got1xxResponse: got1xx}))
	}
	res, err := u.Transport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if spaceInName(res.Header) {
		// Closed unread, the body takes its connection with it.
		res.Body.Close()
		return nil, errSpaceBeforeColon
	}
	if watch != nil {
		watch.restore(res)
	}
	return res, nil
}

// client returns the client NewTransport registered on u.Transport, or nil
// for another round tripper; it is looked up once.
func (u *Upstream) client() *client {
	if c := u.direct.Load(); c != nil {
		if c == noClient {
			return nil
		}
		return c
	}
	c := noClient
	if t, ok := u.Transport.(*http.Transport); ok {
		if v, ok := clients.Load(weak.Make(t)); ok {
			c = v.(*client)
		}
	}
	u.direct.Store(c)
	if c == noClient {
		return nil
	}
	return c
}

// noClient marks an Upstream whose transport has no client of ours.
var noClient = new(client)

// pick asks the picker, then falls back to the next server that is neither
// full nor already tried, so max_connections and "each retry on another
// server" hold whatever the strategy chose. The server it returns is
// already counted in flight: taking the slot by compare-and-swap (TryAcquire)
// keeps concurrent requests from overshooting max_connections together.
// The caller releases it.
func (u *Upstream) pick(r *http.Request, tried []*upstream.Server) *upstream.Server {
	servers := u.Pool.Available()
	if len(servers) == 0 {
		return nil
	}
	s := u.Picker.Pick(servers, r)
	if s != nil && !contains(tried, s) && take(s) {
		return s
	}
	off := 0
	for i, c := range servers {
		if c == s {
			off = i
			break
		}
	}
	for i := 1; i <= len(servers); i++ {
		c := servers[(off+i)%len(servers)]
		if !contains(tried, c) && take(c) {
			return c
		}
	}
	return nil
}

// pickAffine returns the usable server whose AffinityID is id, counted in
// flight, or nil when it is gone, unusable or full: then the strategy
// picks as for any request, and the sticky policy moves the client.
func (u *Upstream) pickAffine(upstreamName, id string) *upstream.Server {
	n, err := strconv.ParseUint(id, 36, 64)
	if err != nil {
		return nil
	}
	for _, s := range u.Pool.Available() {
		if upstream.AffinityHash(upstreamName, s.Name) == n {
			if take(s) {
				return s
			}
			return nil
		}
	}
	return nil
}

// take counts a request in flight on s unless s is full: at its
// max_connections cap (checked and taken in one compare-and-swap), or a
// half-open circuit with its probes under way.
func take(s *upstream.Server) bool {
	return !s.Full() && s.TryAcquire()
}

func contains(list []*upstream.Server, s *upstream.Server) bool {
	for _, c := range list {
		if c == s {
			return true
		}
	}
	return false
}

// target points req at server s, under the server's base path if it has
// one.
func target(req *http.Request, s *upstream.Server, path, rawPath string) {
	req.URL.Scheme = s.URL.Scheme
	req.URL.Host = s.URL.Host
	base := s.URL.Path
	if base == "" || base == "/" {
		req.URL.Path, req.URL.RawPath = path, rawPath
		return
	}
	req.URL.Path = joinPath(base, path)
	if rawPath != "" {
		req.URL.RawPath = joinPath(s.URL.EscapedPath(), rawPath)
	}
}

func joinPath(a, b string) string {
	switch {
	case a[len(a)-1] == '/' && b != "" && b[0] == '/':
		return a + b[1:]
	case a[len(a)-1] != '/' && (b == "" || b[0] != '/'):
		return a + "/" + b
	}
	return a + b
}
