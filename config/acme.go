package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// challengeTypes are the ACME challenges the proxy can answer itself.
var challengeTypes = []string{ChallengeHTTP01, ChallengeTLSALPN01}

// certSource checks that the tls section names exactly one place the
// certificate comes from: files, an ACME CA or the local CA.
func (c *checker) certSource(cfg *Config) {
	t := cfg.TLS
	files := t.CertFile != "" || t.KeyFile != ""
	switch {
	case t.ACME != nil && files:
		c.errf("tls.acme", "cannot be used with cert_file and key_file: the certificate comes from the files or from the CA, not both")
		return
	case t.Internal && files:
		c.errf("tls.internal", "cannot be used with cert_file and key_file: the certificate comes from the files or from the local CA, not both")
		return
	case t.ACME == nil && !t.Internal:
		if t.CertFile == "" {
			c.errf("tls.cert_file", "required when tls is set")
		}
		if t.KeyFile == "" {
			c.errf("tls.key_file", "required when tls is set")
		}
		return
	}
	if t.Internal {
		c.internalCA(t.ACME)
		return
	}
	c.acme(cfg, t.ACME)
}

// internalCA checks what of tls.acme the local CA uses beside
// tls.internal: the domains and the storage, nothing that talks to a CA.
func (c *checker) internalCA(a *ACME) {
	if a == nil {
		return
	}
	for _, k := range []struct {
		key string
		set bool
	}{
		{"email", a.Email != ""}, {"ca", a.CA != ""}, {"ca_root", a.CARoot != ""},
		{"challenges", len(a.Challenges) > 0}, {"on_demand", a.OnDemand}, {"ask", a.Ask != ""},
	} {
		if k.set {
			c.errf("tls.acme."+k.key, "has no effect with tls.internal: the local CA issues without ACME (only domains and storage apply)")
		}
	}
	c.domains(a)
}

// acme checks tls.acme when an ACME CA issues the certificates. Nothing
// here contacts the CA: -validate must work offline.
func (c *checker) acme(cfg *Config, a *ACME) {
	p := "tls.acme."
	if len(a.Domains) == 0 && !a.OnDemand {
		c.errf(p+"domains", "required: list the names to obtain certificates for, or set on_demand: true with an ask URL")
	}
	c.domains(a)
	if a.OnDemand && a.Ask == "" {
		c.errf(p+"ask", "required with on_demand: the URL that approves each name before a certificate is requested, or anyone pointing a name here spends the CA's rate limits")
	}
	if a.Ask != "" && !a.OnDemand {
		c.warnf(p+"ask", "ignored without on_demand: true")
	}
	if a.Ask != "" {
		c.httpURL(p+"ask", a.Ask, false)
	}
	if a.CA != "" {
		c.httpURL(p+"ca", a.CA, true)
	}
	c.caFile(p+"ca_root", a.CARoot)
	if a.Email != "" && !strings.Contains(a.Email, "@") {
		c.errf(p+"email", "%s is not an email address", quote(a.Email))
	}
	seen := map[string]bool{}
	for i, ch := range a.Challenges {
		at := fmt.Sprintf("%schallenges[%d]", p, i)
		switch {
		case !slices.Contains(challengeTypes, ch):
			c.errf(at, "unknown challenge %s%s (the proxy answers %s)", quote(ch), didYouMean(suggest(ch, challengeTypes)), strings.Join(challengeTypes, " and "))
		case seen[ch]:
			c.errf(at, "%s is listed twice", quote(ch))
		case ch == ChallengeHTTP01 && cfg.HTTPRedirect == "":
			c.errf(at, "http-01 is answered on the http_redirect listener, and there is none: set http_redirect (port 80 for a public CA) or use tls-alpn-01")
		}
		seen[ch] = true
	}
}

// domains checks the names of tls.acme.domains.
func (c *checker) domains(a *ACME) {
	seen := map[string]bool{}
	for i, d := range a.Domains {
		at := fmt.Sprintf("tls.acme.domains[%d]", i)
		name := strings.ToLower(d)
		switch {
		case !hostName(name):
			c.errf(at, "%s is not a host name (such as example.com or *.example.com)", quote(d))
		case seen[name]:
			c.errf(at, "%s is listed twice", quote(d))
		}
		seen[name] = true
	}
}

// hostName reports a DNS name, with at most a leading "*." label.
func hostName(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// httpURL checks an absolute http(s) URL; httpsOnly refuses plain http,
// for a CA whose answers carry certificates and keys' authorisations.
func (c *checker) httpURL(path, raw string, httpsOnly bool) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "":
		c.errf(path, "%s is not an absolute URL", quote(raw))
	case u.Scheme == "https":
	case u.Scheme == "http" && !httpsOnly:
	case httpsOnly:
		c.errf(path, "%s must be an https:// URL (RFC 8555 §6.1)", quote(raw))
	default:
		c.errf(path, "%s must be an http:// or https:// URL", quote(raw))
	}
}
