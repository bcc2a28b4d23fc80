package policy

import (
	"net/http"
	"strings"
	"time"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/reqinfo"
	"github.com/tbsphathuynh/proxy/middleware"
	"github.com/tbsphathuynh/proxy/upstream"
)

// sticky keeps a client on the server its cookie names while that server
// is usable (the forwarder reads the record's Affinity), and sets the
// cookie whenever the answer came from another server: the first
// request, or one whose server was down, full or gone. The cookie holds
// an opaque id (upstream.AffinityID), the same across reloads.
func sticky(p *config.StickyPolicy) middleware.Middleware {
	base := http.Cookie{Name: p.Cookie, Path: "/", Secure: p.Secure, HttpOnly: p.HTTPOnly, SameSite: http.SameSiteLaxMode}
	switch strings.ToLower(p.SameSite) {
	case "strict":
		base.SameSite = http.SameSiteStrictMode
	case "none":
		base.SameSite = http.SameSiteNoneMode
	}
	ttl := time.Duration(p.TTL)
	if ttl > 0 {
		base.MaxAge = int(ttl.Seconds())
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := reqinfo.From(r.Context())
			if info == nil {
				next.ServeHTTP(w, r)
				return
			}
			had := ""
			if c, err := r.Cookie(base.Name); err == nil {
				had = c.Value
				info.Affinity = had
			}
			sw := &headerWriter{writer: writer{w}, edits: &edits{}}
			sw.also = func(h http.Header) {
				if info.Server == "" {
					return // the proxy's own answer: no server to stick to
				}
				id := upstream.AffinityID(info.Upstream, info.Server)
				if id == had {
					return
				}
				c := base
				c.Value = id
				if v := c.String(); v != "" {
					h.Add("Set-Cookie", v)
				}
			}
			next.ServeHTTP(sw, r)
		})
	}
}
