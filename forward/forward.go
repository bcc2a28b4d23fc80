// Package forward is the proxy handler: it picks a server for each request,
// relays the exchange with httputil.ReverseProxy, and answers for the
// server when none can.
package forward

import (
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

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
// http.RoundTripper: httputil.ReverseProxy hands it each outgoing request,
// and it chooses the server, so a retry on another server happens before
// any byte of a response reaches the client.
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
}

// Route is the handler of one route: it rewrites the request for the
// upstream and relays the exchange.
type Route struct {
	name        string
	stripPrefix string
	up          *Upstream
	proxy       httputil.ReverseProxy
	fallback    http.Handler
}

// NewRoute returns the handler for a route named name that sends to up.
// When stripPrefix is set, it is removed from the path before forwarding.
func NewRoute(name string, up *Upstream, stripPrefix string, log *slog.Logger) *Route {
	rt := &Route{name: name, stripPrefix: strings.TrimSuffix(stripPrefix, "/"), up: up}
	rt.proxy = httputil.ReverseProxy{
		Rewrite:    rt.rewrite,
		Transport:  up,
		BufferPool: bufferPool{},
		// Errors while relaying a body after the headers went out can only
		// be logged; the client sees the connection end.
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ErrorHandler: rt.fail,
	}
	return rt
}

// ServeHTTP implements http.Handler.
func (rt *Route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if info := reqinfo.From(r.Context()); info != nil {
		info.Route = rt.name
		info.Upstream = rt.up.Name
		if rt.fallback != nil && info.Request == nil {
			info.Request = r
		}
	}
	rt.proxy.ServeHTTP(w, r)
}

func (rt *Route) rewrite(pr *httputil.ProxyRequest) {
	// ReverseProxy drops inbound X-Forwarded-* when Rewrite is set; keep
	// the client's chain so SetXForwarded appends to it, as nginx's
	// $proxy_add_x_forwarded_for does.
	if prior, ok := pr.In.Header["X-Forwarded-For"]; ok {
		pr.Out.Header["X-Forwarded-For"] = prior
	}
	pr.SetXForwarded()
	pr.Out.Host = pr.In.Host
	if rt.stripPrefix != "" {
		u := pr.Out.URL
		u.Path = strip(u.Path, rt.stripPrefix)
		if u.RawPath != "" {
			u.RawPath = strip(u.RawPath, rt.stripPrefix)
		}
	}
}

func (rt *Route) fail(w http.ResponseWriter, r *http.Request, err error) {
	if info := reqinfo.From(r.Context()); info != nil {
		info.Err = err
	}
	if rt.tryFallback(w, r, StatusFor(err)) {
		return
	}
	WriteError(w, err, rt.up.RetryAfter)
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

// bufferPool lends ReverseProxy its copy buffers, so relaying a body does
// not allocate 32 KiB per request.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
