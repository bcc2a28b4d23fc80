package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/tbsphathuynh/proxy/admin"
	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/edgecert"
	"github.com/tbsphathuynh/proxy/metrics"
)

// obtainTimeout bounds how long a start or a reload waits for the
// certificates of tls.acme: one attempt at each name, as certmagic makes
// when asked synchronously.
const obtainTimeout = 5 * time.Minute

// managedTLS reports a tls section whose certificates a CA issues.
func managedTLS(t *config.TLS) bool {
	return t != nil && (t.ACME != nil || t.Internal)
}

// loadManaged builds the listener TLS of a tls section with acme or
// internal. A reload that keeps those settings keeps the running
// manager, its certificates and its renewals; one that changes them
// obtains the new certificates over the listeners already open before
// anything is swapped, and the reload fails, keeping the current ones,
// when the CA does not issue them.
func (s *Server) loadManaged(cfg *config.Config, conf *tls.Config) (*listenerTLS, error) {
	cur := s.cert.Load()
	if cur != nil && cur.managed != nil && cur.managed.Key() == edgecert.Key(cfg.TLS) {
		return s.managedListener(cur.managed, conf), nil
	}
	o := s.certTuning
	o.TLS, o.Log = cfg.TLS, s.log
	m, err := edgecert.New(o)
	if err != nil {
		return nil, err
	}
	if s.main == nil {
		// At start, Start obtains them once the listeners can answer
		// the challenges.
		return s.managedListener(m, conf), nil
	}
	var redirect string
	if s.redirect != nil {
		redirect = s.redirect.ln.Addr().String()
	}
	m.SetChallengeAddrs(redirect, s.main.ln.Addr().String())
	s.pendingCert.Store(m)
	defer s.pendingCert.Store(nil)
	ctx, cancel := context.WithTimeout(context.Background(), obtainTimeout)
	defer cancel()
	if err := m.Manage(ctx); err != nil {
		m.Stop()
		return nil, fmt.Errorf("tls.acme changed and the new certificates were not obtained; keeping the current ones: %w", err)
	}
	return s.managedListener(m, conf), nil
}

func (s *Server) managedListener(m *edgecert.Manager, conf *tls.Config) *listenerTLS {
	if m.ALPN() {
		// tls-alpn-01 is answered in the handshake itself (RFC 8737 §3).
		conf.NextProtos = append(slices.Clone(conf.NextProtos), edgecert.ALPNProtocol)
	}
	return &listenerTLS{managed: m, conf: conf}
}

// challengeAddrs tells a new manager where the listeners answer the
// challenges, before they serve: an on-demand handshake may use them.
func challengeAddrs(l *listenerTLS, main, redirect *listener) {
	if l == nil || l.managed == nil {
		return
	}
	var redirectAddr string
	if redirect != nil {
		redirectAddr = redirect.ln.Addr().String()
	}
	l.managed.SetChallengeAddrs(redirectAddr, main.ln.Addr().String())
}

// obtainCertificates gets the certificates of tls.acme at start, once
// the listeners are open to answer the challenges, before Start reports
// the proxy listening.
func (s *Server) obtainCertificates(l *listenerTLS) error {
	if l == nil || l.managed == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), obtainTimeout)
	defer cancel()
	return l.managed.Manage(ctx)
}

// managedCertificate is the certificate of a handshake when a CA issues
// them: a tls-alpn-01 validation of a reload's pending settings is
// answered by the manager that asked for it.
func (s *Server) managedCertificate(m *edgecert.Manager, hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if p := s.pendingCert.Load(); p != nil && slices.Contains(hello.SupportedProtos, edgecert.ALPNProtocol) {
		return p.GetCertificate(hello)
	}
	return m.GetCertificate(hello)
}

// answerChallenge answers an http-01 challenge on the redirect listener
// and reports whether r was one.
func (s *Server) answerChallenge(w http.ResponseWriter, r *http.Request) bool {
	if p := s.pendingCert.Load(); p != nil && p.HandleHTTPChallenge(w, r) {
		return true
	}
	if l := s.cert.Load(); l != nil && l.managed != nil {
		return l.managed.HandleHTTPChallenge(w, r)
	}
	return false
}

// settleCertificates stops the manager a reload did not keep: the old
// one once the new one serves, or the new one when the reload failed.
func (s *Server) settleCertificates(prev, next *listenerTLS, err error) {
	old, neu := managerOf(prev), managerOf(next)
	switch {
	case old == neu:
	case err != nil && neu != nil:
		neu.Stop()
	case err == nil && old != nil:
		old.Stop()
	}
}

func managerOf(l *listenerTLS) *edgecert.Manager {
	if l == nil {
		return nil
	}
	return l.managed
}

// stopCertificates ends the renewals of the current manager, at shutdown
// or when Start fails.
func (s *Server) stopCertificates() {
	if l := s.cert.Load(); l != nil && l.managed != nil {
		l.managed.Stop()
	}
}

// certificates lists what the TLS listener serves, for /api/certificates
// and the expiry gauge.
func (s *Server) certificates() []edgecert.Info {
	l := s.cert.Load()
	switch {
	case l == nil:
		return nil
	case l.managed != nil:
		return l.managed.Certificates()
	case l.cert == nil || l.cert.Leaf == nil:
		return nil
	}
	leaf := l.cert.Leaf
	names := leaf.DNSNames
	if len(names) == 0 {
		names = []string{leaf.Subject.CommonName}
	}
	var lastErr string
	if e := l.lastErr.Load(); e != nil {
		lastErr = *e
	}
	out := make([]edgecert.Info, 0, len(names))
	for _, n := range names {
		out = append(out, edgecert.Info{Domain: n, Issuer: edgecert.IssuerName(leaf), NotAfter: leaf.NotAfter, Source: edgecert.SourceFile, LastError: lastErr})
	}
	return out
}

func (s *Server) certificateStats() []metrics.CertificateStat {
	infos := s.certificates()
	out := make([]metrics.CertificateStat, 0, len(infos))
	for _, in := range infos {
		out = append(out, metrics.CertificateStat{Domain: in.Domain, NotAfter: in.NotAfter})
	}
	return out
}

func (s *Server) adminCertificates() []admin.Certificate {
	infos := s.certificates()
	out := make([]admin.Certificate, 0, len(infos))
	for _, in := range infos {
		c := admin.Certificate{Domain: in.Domain, Issuer: in.Issuer, Source: in.Source, LastError: in.LastError}
		if !in.NotAfter.IsZero() {
			t := in.NotAfter.UTC()
			c.NotAfter = &t
		}
		out = append(out, c)
	}
	return out
}
