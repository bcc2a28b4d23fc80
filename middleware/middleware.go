// Package middleware holds the pieces wrapped around the proxy handler:
// panic recovery, connection hygiene, refusals and rate limits. Each is a
// func(http.Handler) http.Handler; a route's policies (package policy) are
// too.
package middleware

import (
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"

	"github.com/tbsphathuynh/proxy/internal/grpcwire"
)

// Middleware wraps a handler.
type Middleware func(http.Handler) http.Handler

// Chain applies mws so that the first is outermost.
func Chain(h http.Handler, mws ...Middleware) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Recover turns a panic in h into a 500 and a log line at ERROR with the
// stack, so one bad request never takes the process down; onPanic, when
// not nil, is called for each (to count it). http.ErrAbortHandler passes
// through: it is how the forwarder aborts a response already under way.
func Recover(log *slog.Logger, onPanic func()) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					recovered(log, onPanic, v, w, r)
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// Recovered is what Recover does with a panic v recovered while serving a
// request for method and path, for a caller with no http.Request (the
// direct lane). It must be called from the deferred function that
// recovered v, for the stack to show where v came from.
func Recovered(log *slog.Logger, onPanic func(), v any, w http.ResponseWriter, method, path string) {
	recovered(log, onPanic, v, w, &http.Request{Method: method, URL: &url.URL{Path: path}})
}

// recovered is Recovered for r, which a gRPC call gets as INTERNAL.
func recovered(log *slog.Logger, onPanic func(), v any, w http.ResponseWriter, r *http.Request) {
	method, path := r.Method, r.URL.Path
	if v == http.ErrAbortHandler {
		panic(v)
	}
	if onPanic != nil {
		onPanic()
	}
	if log == nil {
		log = slog.Default()
	}
	log.Error("panic serving request", "panic", v, "method", method, "path", path, "stack", string(debug.Stack()))
	if !grpcwire.Refuse(w, r, http.StatusInternalServerError, "proxy: internal error") {
		http.Error(w, "500 Internal Server Error", http.StatusInternalServerError) // http.Error ends the line
	}
}

// CloseChunked closes the client connection after any HTTP/1.x request
// whose body came chunked. A request with both Content-Length and
// Transfer-Encoding is a smuggling attempt (RFC 9112 §6.3, §11.2): net/http
// frames it by Transfer-Encoding alone but hides the Content-Length it
// dropped, and would keep the connection open, so bytes after the body
// could be read as a second request. Closing after every chunked request
// covers that case at the cost of keep-alive for chunked uploads, which are
// rare.
func CloseChunked(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
			r.Close = true
		}
		next.ServeHTTP(w, r)
	})
}
