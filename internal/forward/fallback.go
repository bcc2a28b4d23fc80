package forward

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/tbsphathuynh/proxy/internal/grpcwire"

	"github.com/tbsphathuynh/proxy/internal/reqinfo"
)

// Static returns a handler that always gives the same answer: a route's
// fallback when none of its servers can.
func Static(status int, body string, header http.Header) http.Handler {
	b := []byte(body)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range header {
			h[k] = v
		}
		if grpcwire.IsCall(r.Header) {
			// A gRPC client can read no page: it gets the status for
			// the answer's, the body as the message, the headers as
			// metadata. An answer that is no failure to HTTP's eyes is
			// still the server's absence to the call's.
			code := grpcwire.FromHTTP(status)
			if status < 400 {
				code = grpcwire.Unavailable
			}
			h.Del("Content-Type")
			grpcwire.WriteStatus(w, r, code, fallbackMessage(body))
			return
		}
		if h.Get("Content-Type") == "" {
			h.Set("Content-Type", "text/plain; charset=utf-8")
		}
		h.Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			w.Write(b)
		}
	})
}

// fallbackMessage is a fallback's body as a grpc-message: its first line,
// at most 256 bytes of it.
func fallbackMessage(body string) string {
	body, _, _ = strings.Cut(strings.TrimSpace(body), "\n")
	if len(body) > 256 {
		body = body[:256]
	}
	return body
}

// SetFallback makes fb answer whenever the route's own upstream fails
// (502, 503, 504) before any byte of a response went out. fb sees the
// request as the client sent it.
func (rt *Route) SetFallback(fb http.Handler) { rt.fallback = fb }

// tryFallback serves r with the fallback when there is one and the status
// is one it covers, reporting whether it did.
func (rt *Route) tryFallback(w http.ResponseWriter, r *http.Request, status int) bool {
	if rt.fallback == nil {
		return false
	}
	switch status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
	default:
		return false
	}
	in := r
	if info := reqinfo.From(r.Context()); info != nil && info.Request != nil {
		in = info.Request
		info.Fallback = true
	}
	rt.fallback.ServeHTTP(w, in)
	return true
}
