package server

import (
	"net"
	"net/http"
	"unsafe"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/accesslog"
	"github.com/tbsphathuynh/proxy/internal/forward"
	"github.com/tbsphathuynh/proxy/internal/h1"
	"github.com/tbsphathuynh/proxy/internal/reqinfo"
	"github.com/tbsphathuynh/proxy/middleware"
)

// The direct lane: h1 offers each body-less request's raw head to
// lane.ServeDirect before it builds an http.Request. A request the lane can
// forward head to head (forward.DirectHead), on a route that can serve
// it, goes straight to the route's forwarder with a record tracked, and
// logged, as Track does; anything else goes through the handler chain as
// usual. The lane is off when client.direct_lane says so, and while
// tracing is on, which reads and rewrites the request's header.
// docs/performance.md has what it saves.

// lane is the Server as h1 sees it: an unexported type, so that the
// h1.Direct method stays out of the Server's exported API.
type lane struct{ s *Server }

// ServeDirect implements h1.Direct.
func (l lane) ServeDirect(x *h1.Exchange) bool {
	s := l.s
	rt := s.enter()
	defer s.leave(rt)
	return rt.serveDirect(s, x)
}

func (rt *runtime) serveDirect(s *Server, x *h1.Exchange) bool {
	if !rt.direct {
		return false
	}
	t := accesslog.Begin()
	info := t.Info()
	buf := forward.DirectBuffer()
	head, host, path, clientID, ok := forward.DirectHead((*buf)[:0], x, clientIP(x.RemoteAddr()), info.RequestID)
	var lr *laneRoute
	if ok {
		// Neither string outlives the call: the views save copying them.
		if i := rt.table.MatchHostPath(stringView(host), stringView(path)); i >= 0 {
			lr = rt.directs[i]
		} else {
			lr = rt.directAll
		}
	}
	if lr == nil {
		*buf = head[:0]
		forward.PutDirectBuffer(buf, info)
		t.Drop()
		return false
	}
	s.metrics.ClientRequest(1)
	head = lr.fr.StripDirect(head, path)
	*buf = head
	info.Head = head
	if clientID != nil {
		t.KeepID(string(clientID))
	}

	w := t.Answer(x.ResponseWriter())
	r := x.Request()
	ctx := reqinfo.With(r.Context(), info)
	if ctx != r.Context() {
		r = r.WithContext(ctx)
	}
	defer t.End(r, host, path, rt.accessLog, s.observe)
	defer forward.PutDirectBuffer(buf, info)
	defer func() {
		if v := recover(); v != nil {
			middleware.Recovered(s.log, s.metrics.Panic, v, w, r.Method, string(path))
		}
	}()
	lr.serve(w, r, info)
	return true
}

// laneRoute is a route as the direct lane serves it: its forwarder, behind
// its rate limit when it has one.
type laneRoute struct {
	fr        *forward.Route
	limit     *limiterEntry
	onLimited func()
}

func (lr *laneRoute) serve(w http.ResponseWriter, r *http.Request, info *reqinfo.Info) {
	if l := lr.limit; l != nil {
		lr.fr.Label(info)
		if !middleware.Limit(w, r, l.limiter, l.key, lr.onLimited) {
			return
		}
	}
	lr.fr.ServeDirect(w, r, info)
}

// stringView is b as a string for a call that keeps nothing of it.
func stringView(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// clientIP is the address of a RemoteAddr without its port.
func clientIP(remoteAddr string) string {
	if ip, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return ip
	}
	return remoteAddr
}

// directBalancing reports whether a balancer picks without the request's
// URL or header, which the direct lane's request lacks (the strategy table
// in config says which do).
func directBalancing(lb config.LoadBalancing) bool {
	return !lb.ReadsRequest()
}
