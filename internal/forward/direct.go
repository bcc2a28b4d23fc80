package forward

import (
	"net/http"
	"sync"

	"github.com/tbsphathuynh/proxy/internal/h1"
	"github.com/tbsphathuynh/proxy/internal/httpsyntax"
	"github.com/tbsphathuynh/proxy/internal/reqinfo"
)

// The direct lane forwards a request head to head: the client's header
// lines go to the server as they came, in the client's order and
// spelling, followed by the proxy's own, and no http.Request header map
// is built, filled, copied, sorted and written out again. It serves only
// requests whose forwarding needs nothing more: a GET or HEAD without a
// body that carries none of the headers the proxy removes or acts on
// (hop-by-hop ones, Pragma; forwarding headers and X-Request-Id it
// handles as the usual path does), with a path and query the proxy sends
// as they are. Everything after the
// head (choosing a server, retries, the relay, the answers the proxy
// makes itself) is the same code as for any other request; see
// docs/performance.md for what it saves.

// RawRequest is a request head as the client sent it; h1.Exchange is one.
// Field values come without surrounding white space.
type RawRequest interface {
	Method() []byte
	Target() []byte
	Fields() int
	Field(i int) (name, value []byte)
}

var _ RawRequest = (*h1.Exchange)(nil)

// DirectHead appends to b the head a server gets for the request of x, and
// returns it with the request's Host value and path. The request ID sent
// is the client's when it sent exactly one that is valid, returned as
// clientID, else requestID. ok is false, and b unchanged, for a request
// outside the direct lane, which then goes the usual way.
func DirectHead(b []byte, x RawRequest, clientIP, requestID string) (head, host, path, clientID []byte, ok bool) {
	start := len(b)
	method := x.Method()
	if string(method) != http.MethodGet && string(method) != http.MethodHead {
		return b, nil, nil, nil, false
	}
	target := x.Target()
	path, query := target, []byte(nil)
	for i, c := range target {
		if c == '?' {
			path, query = target[:i], target[i+1:]
			break
		}
	}
	if len(path) == 0 || path[0] != '/' || !httpsyntax.PlainPath(path) || !queryClean(query) {
		return b, nil, nil, nil, false
	}
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\n"...)
	agent, ids := false, 0
	// A chain from proxies before us is kept and appended to, as the
	// usual path does (joinChain), in one line after the client's.
	var chainArr [4][]byte
	chain := chainArr[:0]
	for i := range x.Fields() {
		name, value := x.Field(i)
		switch {
		case httpsyntax.EqualFold(name, "X-Forwarded-For"):
			if len(chain) == len(chainArr) {
				return b[:start], nil, nil, nil, false
			}
			chain = append(chain, value)
			continue
		case httpsyntax.EqualFold(name, "X-Forwarded-Host"), httpsyntax.EqualFold(name, "X-Forwarded-Proto"),
			httpsyntax.EqualFold(name, "Forwarded"):
			// Set by the proxy, never trusted from the client.
			continue
		case httpsyntax.EqualFold(name, "X-Request-Id"):
			// Kept when it is the only one and valid, as Track keeps it;
			// written with the proxy's own header below.
			ids++
			clientID = value
			continue
		case httpsyntax.EqualFold(name, "Host"):
			if !directHost(value) {
				return b[:start], nil, nil, nil, false
			}
			host = value
		case httpsyntax.EqualFold(name, "User-Agent"):
			// The usual path sends the first one only, and none when it
			// is empty.
			if agent || len(value) == 0 {
				return b[:start], nil, nil, nil, false
			}
			agent = true
		case notDirect(name) || !token(name) || httpsyntax.UnderscoreAlias(name):
			// A name net/http would not send on, or one the usual path
			// drops, is for the usual path to drop; h1 takes none.
			return b[:start], nil, nil, nil, false
		}
		b = append(b, name...)
		b = append(b, ": "...)
		b = append(b, value...)
		b = append(b, "\r\n"...)
	}
	if host == nil {
		return b[:start], nil, nil, nil, false
	}
	b = append(b, "X-Forwarded-For: "...)
	for _, v := range chain {
		b = append(b, v...)
		b = append(b, ", "...)
	}
	b = append(b, clientIP...)
	b = append(b, "\r\nX-Forwarded-Host: "...)
	b = append(b, host...)
	b = append(b, "\r\nX-Forwarded-Proto: http\r\nX-Request-Id: "...)
	if ids != 1 || !httpsyntax.RequestID(clientID) {
		clientID = nil
		b = append(b, requestID...)
	} else {
		b = append(b, clientID...)
	}
	b = append(b, "\r\n\r\n"...)
	return b, host, path, clientID, true
}

// notDirectNames are the request headers that keep a request from the
// direct lane: hop-by-hop ones, and those net/http's server reads (Pragma: no-cache adds a
// Cache-Control; a Content-Length: 0 is not sent on).
var notDirectNames = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Pragma", "Expect", "Content-Length",
}

func notDirect(name []byte) bool {
	for _, n := range notDirectNames {
		if len(n) == len(name) && httpsyntax.EqualFold(name, n) {
			return true
		}
	}
	return false
}

func token(b []byte) bool {
	for _, c := range b {
		if !httpsyntax.IsTchar(c) {
			return false
		}
	}
	return len(b) > 0
}

// directHost reports whether a Host value goes to servers as it is: the
// usual path writes an empty Host for one that could split the header,
// and strips an IPv6 zone.
func directHost(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		if !validHostByte[c] || c == '%' {
			return false
		}
	}
	return true
}

// DirectCapable reports whether the route can serve the direct lane: no
// fallback upstream (which needs the client's request as it came), and
// every server of its upstream reached over plain HTTP at its root by
// this package's own client. Whether the upstream's balancer needs the
// request's header is for the caller to know.
func (rt *Route) DirectCapable() bool {
	if rt.fallback != nil || rt.hooks.ModifyResponse != nil || rt.hooks.ErrorHandler != nil || rt.up.client() == nil {
		return false
	}
	for _, s := range rt.up.Pool.Servers {
		if u := s.URL; u.Scheme != "http" || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
			return false
		}
	}
	return true
}

// StripDirect removes the route's prefix, if it strips one, from the path
// of a head DirectHead made, in place, as the usual path removes it from
// the URL's: path is the request's path as DirectHead returned it, which
// must not share head's memory. It returns the head.
func (rt *Route) StripDirect(head, path []byte) []byte {
	if rt.stripPrefix == "" {
		return head
	}
	start := 0
	for start < len(head) && head[start] != ' ' {
		start++
	}
	start++ // the target follows the method and a space
	stripped := strip(string(path), rt.stripPrefix)
	if stripped == string(path) {
		return head
	}
	// A stripped path is never longer: the head shrinks, in place.
	n := copy(head[start:], stripped)
	rest := copy(head[start+n:], head[start+len(path):])
	return head[:start+n+rest]
}

// ServeDirect forwards a request of the direct lane: r is the client's
// request as h1.Exchange.Request gives it, without header or URL, and
// info its record, in r's context, holding its head (see DirectHead).
func (rt *Route) ServeDirect(w http.ResponseWriter, r *http.Request, info *reqinfo.Info) {
	info.Route = rt.name
	info.Upstream = rt.up.Name
	ob := outbounds.Get().(*outbound)
	ob.w = w
	info.Informational = ob
	ob.req = *r
	out := &ob.req
	out.URL = &ob.url
	out.Header = nil // the head is info.Head
	out.Body = nil
	out.Close = false
	rt.exchange(w, r, out, ob, info, "")
	if !info.Held {
		// Nothing holds ob now: no rescue took the outgoing request, and
		// only this package's client carries the lane's requests.
		info.Informational = nil
		*ob = outbound{}
		outbounds.Put(ob)
	}
}

// outbounds are the direct lane's outbound memory, reused once an
// exchange is over: at 600 bytes, one per request was a third of what a
// request of the lane allocated.
var outbounds = sync.Pool{New: func() any { return new(outbound) }}

// directHeads are buffers for the heads of the direct lane.
var directHeads = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// DirectBuffer lends a buffer for a head of the direct lane; give it back
// with PutDirectBuffer once the exchange is over.
func DirectBuffer() *[]byte { return directHeads.Get().(*[]byte) }

// PutDirectBuffer returns a buffer DirectBuffer lent, unless another
// goroutine may still hold the head written in it (reqinfo.Info.Held).
func PutDirectBuffer(b *[]byte, info *reqinfo.Info) {
	if !info.Held {
		putBuffer(b)
	}
}

// putBuffer returns a buffer to directHeads, unless a huge head grew it.
func putBuffer(b *[]byte) {
	if cap(*b) > 64<<10 {
		return
	}
	*b = (*b)[:0]
	directHeads.Put(b)
}
