package middleware

import (
	"net/http"
	"time"

	"github.com/tbsphathuynh/proxy/internal/grpcwire"
	"github.com/tbsphathuynh/proxy/ratelimit"
)

// RateLimit lets a request through when limiter allows its key, and answers
// 429 with Retry-After otherwise. Every response on the route carries
// RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset, so well-behaved
// clients can pace themselves before they are refused. onLimited, when
// set, is called for each refused request (metrics).
func RateLimit(limiter ratelimit.Limiter, key ratelimit.KeyFunc, onLimited func()) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if Limit(w, r, limiter, key, onLimited) {
				next.ServeHTTP(w, r)
			}
		})
	}
}

// Limit is RateLimit's decision for one request, for a caller without a
// handler to wrap (the direct lane): it sets the RateLimit headers on w
// and reports whether r may go on, having answered 429 when not.
func Limit(w http.ResponseWriter, r *http.Request, limiter ratelimit.Limiter, key ratelimit.KeyFunc, onLimited func()) bool {
	d := limiter.Allow(r.Context(), key(r), time.Now())
	d.SetHeaders(w.Header())
	if d.Allowed {
		return true
	}
	if onLimited != nil {
		onLimited()
	}
	if grpcwire.IsCall(r.Header) {
		// A gRPC client reads RESOURCE_EXHAUSTED, and its retry policy
		// may act on it; a 429 it could only call UNAVAILABLE.
		grpcwire.WriteStatus(w, r, grpcwire.ResourceExhausted, "proxy: rate limit exceeded, retry later")
		return false
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte("429 Too Many Requests: rate limit exceeded, retry later\n"))
	return false
}
