package config

import (
	"fmt"
	"slices"
	"strings"
)

// protocol checks an upstream's protocol against its servers' schemes and
// its gRPC health check; p is "" or "upstreams.NAME.".
func (c *checker) protocol(p string, u *Upstream) {
	if !slices.Contains(Protocols, u.Protocol) {
		hint := didYouMean(suggest(u.Protocol, Protocols))
		if hint == "" {
			hint = " (one of: " + strings.Join(Protocols, ", ") + ")"
		}
		c.errf(p+"protocol", "unknown protocol %s%s", quote(u.Protocol), hint)
		return
	}
	// h2c is HTTP/2 without TLS, h2 is HTTP/2 negotiated in TLS: a server
	// of the other scheme could never be reached.
	want := map[string]string{"h2c": "http", "h2": "https"}[u.Protocol]
	for i, s := range u.Servers {
		scheme, _, ok := strings.Cut(s.URL, "://")
		if want != "" && ok && !strings.EqualFold(scheme, want) {
			c.errf(fmt.Sprintf("%sservers[%d].url", p, i), "protocol %s needs a %s:// URL, not %s", u.Protocol, want, quote(s.URL))
		}
	}
	if u.HealthChecks.GRPC != nil && u.Protocol != "h2c" && u.Protocol != "h2" {
		c.errf(p+"health_checks.grpc", "needs protocol h2c or h2, since gRPC runs on HTTP/2 (protocol is %s)", u.Protocol)
	}
}
