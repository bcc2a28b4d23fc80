package config

import (
	"fmt"
	"strings"
)

// listenerTLS checks the client-facing TLS settings beyond the
// certificate.
func (c *checker) listenerTLS(t *TLS) {
	if t.MinVersion != "" && t.MinVersion != "1.2" && t.MinVersion != "1.3" {
		c.errf("tls.min_version", "must be \"1.2\" or \"1.3\", not %s", quote(t.MinVersion))
	}
}

// edge checks http_redirect, hsts and http3, which only make sense beside a TLS
// listener.
func (c *checker) edge(cfg *Config) {
	if a := cfg.HTTPRedirect; a != "" {
		switch {
		case cfg.TLS == nil:
			c.errf("http_redirect", "needs tls: there is no https listener to send clients to")
		case !c.listen("http_redirect", a):
		case sameSocket(a, cfg.Listen):
			c.errf("http_redirect", "must differ from listen (%s): both would take the same port", quote(cfg.Listen))
		case cfg.Admin.Listen != nil && *cfg.Admin.Listen != "" && sameSocket(a, *cfg.Admin.Listen):
			c.errf("http_redirect", "must differ from admin.listen (%s): both would take the same port", quote(*cfg.Admin.Listen))
		}
	}
	if h := cfg.HSTS; h != nil {
		if cfg.TLS == nil {
			// RFC 6797 §7.2: the header means nothing over plain HTTP.
			c.errf("hsts", "needs tls: browsers ignore Strict-Transport-Security over plain HTTP (RFC 6797 §7.2)")
		}
		c.positive("hsts.max_age", h.MaxAge)
	}
	if cfg.HTTP3 && cfg.TLS == nil {
		// RFC 9001 §4: QUIC carries TLS 1.3 itself; there is no HTTP/3
		// without a certificate.
		c.errf("http3", "needs tls: HTTP/3 runs over QUIC, which is always encrypted (RFC 9001)")
	}
}

// serverTLS checks servers[i].tls; sp is the server's path
// ("servers[0]" or "upstreams.NAME.servers[0]").
func (c *checker) serverTLS(sp string, s Server) {
	t := s.TLS
	if t == nil {
		return
	}
	p := sp + ".tls."
	if !strings.HasPrefix(strings.ToLower(s.URL), "https://") {
		c.errf(sp+".tls", "applies only to an https:// server, not %s", quote(s.URL))
		return
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		c.errf(p+"key_file", "required with cert_file")
	case t.CertFile == "" && t.KeyFile != "":
		c.errf(p+"cert_file", "required with key_file")
	}
	if t.InsecureSkipVerify && t.CAFile != "" {
		c.warnf(p+"ca_file", "ignored: insecure_skip_verify accepts any certificate")
	}
	c.keyPair(p, t.CertFile, t.KeyFile, "servers")
	c.caFile(p+"ca_file", t.CAFile)
}

// sameServerTLS reports a server address written twice in one upstream
// with different TLS settings: connections are pooled by address, so one
// setting would win unnoticed.
func (c *checker) sameServerTLS(p string, servers []Server) {
	seen := map[string]int{}
	for i, s := range servers {
		if !strings.HasPrefix(strings.ToLower(s.URL), "https://") {
			continue
		}
		addr := serverAddr(s.URL)
		if first, ok := seen[addr]; ok {
			if !sameTLS(servers[first].TLS, s.TLS) {
				c.errf(fmt.Sprintf("%sservers[%d].tls", p, i), "differs from servers[%d].tls, which has the same address %s", first, addr)
			}
			continue
		}
		seen[addr] = i
	}
}

func sameTLS(a, b *ServerTLS) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// serverAddr is the host:port of an http(s) URL, with the scheme's
// default port; it is what connections to the server are pooled by.
func serverAddr(raw string) string {
	return defaultServerName(raw, nil)
}
