package policy

import (
	"fmt"
	"net/http"
	"net/netip"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/grpcwire"
	"github.com/tbsphathuynh/proxy/middleware"
	"github.com/tbsphathuynh/proxy/ratelimit"
)

// ipFilter refuses with 403 a client whose address is denied, or not
// allowed when an allow list is given. The address is found as a rate
// limit keyed by ip finds it: the connection's, or what trusted proxies
// forwarded. A client whose address cannot be read is refused.
func ipFilter(p *config.IPFilterPolicy, env Env) (middleware.Middleware, error) {
	parse := func(list []string) ([]netip.Prefix, error) {
		out := make([]netip.Prefix, 0, len(list))
		for _, s := range list {
			pfx, err := config.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", s, err)
			}
			out = append(out, pfx)
		}
		return out, nil
	}
	allow, err := parse(p.Allow)
	if err != nil {
		return nil, err
	}
	deny, err := parse(p.Deny)
	if err != nil {
		return nil, err
	}
	trusted, err := ratelimit.ParseTrustedProxies(p.TrustedProxies)
	if err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a, err := netip.ParseAddr(ratelimit.ClientIP(r, trusted))
			if err != nil || !permitted(a.Unmap(), allow, deny) {
				env.Rejected()
				if !grpcwire.Refuse(w, r, http.StatusForbidden, "proxy: the client's address is not allowed") {
					http.Error(w, "403 Forbidden", http.StatusForbidden)
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

func permitted(a netip.Addr, allow, deny []netip.Prefix) bool {
	for _, p := range deny {
		if p.Contains(a) {
			return false
		}
	}
	if len(allow) == 0 {
		return true
	}
	for _, p := range allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
