package policy

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/middleware"
)

// cors speaks the Fetch standard's CORS protocol for the listed origins:
// it answers their preflights itself (204) and marks the answers to their
// requests as shareable. A preflight from another origin, or for a method
// not listed, is refused (403); another origin's plain request goes
// through without the marks, so the browser keeps the answer from the
// page.
func cors(p *config.CORSPolicy, env Env) middleware.Middleware {
	anyOrigin := slices.Contains(p.Origins, "*")
	methods := p.Methods
	if len(methods) == 0 {
		methods = []string{"GET", "HEAD", "POST"}
	}
	allowMethods := strings.Join(methods, ", ")
	allowHeaders := strings.Join(p.Headers, ", ")
	expose := strings.Join(p.ExposeHeaders, ", ")
	maxAge := ""
	if p.MaxAge > 0 {
		maxAge = strconv.Itoa(int(time.Duration(p.MaxAge).Seconds()))
	}
	allowed := func(origin string) bool {
		return anyOrigin || slices.ContainsFunc(p.Origins, func(o string) bool { return strings.EqualFold(strings.TrimSuffix(o, "/"), origin) })
	}
	mark := func(h http.Header, origin string) {
		if anyOrigin && !p.Credentials {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
		}
		if p.Credentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			if origin == "" {
				next.ServeHTTP(w, r)
				return
			}
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				m := r.Header.Get("Access-Control-Request-Method")
				if !allowed(origin) || !slices.Contains(methods, m) {
					env.Rejected()
					w.Header().Add("Vary", "Origin")
					http.Error(w, "403 Forbidden: CORS preflight refused", http.StatusForbidden)
					return
				}
				h := w.Header()
				mark(h, origin)
				h.Set("Access-Control-Allow-Methods", allowMethods)
				if allowHeaders != "" {
					h.Set("Access-Control-Allow-Headers", allowHeaders)
				} else if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
					// None listed: the client's own, as Caddy and
					// Traefik allow them by default.
					h.Set("Access-Control-Allow-Headers", req)
				}
				if maxAge != "" {
					h.Set("Access-Control-Max-Age", maxAge)
				}
				h.Add("Vary", "Access-Control-Request-Method")
				h.Add("Vary", "Access-Control-Request-Headers")
				w.WriteHeader(http.StatusNoContent)
				return
			}
			if !allowed(origin) {
				next.ServeHTTP(w, r)
				return
			}
			cw := &headerWriter{writer: writer{w}, edits: &edits{}}
			cw.also = func(h http.Header) {
				// The server's own CORS fields give way to the policy's.
				mark(h, origin)
				if expose != "" {
					h.Set("Access-Control-Expose-Headers", expose)
				}
			}
			next.ServeHTTP(cw, r)
		})
	}
}
