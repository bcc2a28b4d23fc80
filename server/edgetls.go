package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/edgecert"
)

// listenerTLS is what the main listener's handshakes use, loaded from the
// config's tls section and swapped in once a whole reload succeeded.
type listenerTLS struct {
	cert *tls.Certificate
	// certFile and keyFile are where cert was read from, and stamp their
	// size and modification time then, so a handshake can notice they
	// changed (see certificate).
	certFile, keyFile, stamp string
	// checked is when the files were last looked at (Unix nanoseconds);
	// failed is the stamp of files that did not load, said once.
	checked atomic.Int64
	failed  atomic.Pointer[string]
	// lastErr is why changed files did not load, for /api/certificates.
	lastErr atomic.Pointer[string]
	// managed, when a CA issues the certificates (tls.acme or
	// tls.internal), serves them in place of cert.
	managed *edgecert.Manager
	// conf is the handshake's config: the certificate through
	// GetCertificate, the minimum version, and client certificate
	// verification when tls.client_ca_file is set.
	conf *tls.Config
}

// certCheckEvery is how often, at most, a handshake looks whether the
// certificate files changed.
const certCheckEvery = time.Second

// certificate returns the certificate of the moment. A renewed pair of
// files (certbot, cert-manager) is taken without a reload: at most once a
// second a handshake looks at the files' size and modification time, and
// loads them when they changed. A pair that does not load (say, the
// certificate written and the key not yet) leaves the old one serving.
func (s *Server) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	l := s.cert.Load()
	if l != nil && l.managed != nil {
		return s.managedCertificate(l.managed, hello)
	}
	if l == nil || l.cert == nil {
		return nil, errors.New("no certificate loaded")
	}
	now := time.Now().UnixNano()
	if last := l.checked.Load(); now-last < int64(certCheckEvery) || !l.checked.CompareAndSwap(last, now) {
		return l.cert, nil
	}
	st := fileStamp(l.certFile, l.keyFile)
	if st == l.stamp {
		return l.cert, nil
	}
	c, err := tls.LoadX509KeyPair(l.certFile, l.keyFile)
	if err != nil {
		if f := l.failed.Load(); f == nil || *f != st {
			l.failed.Store(&st)
			msg := err.Error()
			l.lastErr.Store(&msg)
			s.log.Warn("changed certificate files do not load; keeping the current certificate", "cert_file", l.certFile, "key_file", l.keyFile, "err", err)
		}
		return l.cert, nil
	}
	n := &listenerTLS{cert: &c, conf: l.conf, certFile: l.certFile, keyFile: l.keyFile, stamp: st}
	n.checked.Store(now)
	// A reload may have stored a newer one meanwhile: it wins.
	if s.cert.CompareAndSwap(l, n) {
		s.log.Info("certificate files changed; new certificate in use", "cert_file", l.certFile)
	}
	return n.cert, nil
}

// fileStamp names the size and modification time of the files.
func fileStamp(files ...string) string {
	var b strings.Builder
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			b.WriteString("-;")
			continue
		}
		fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return b.String()
}

// handshakeConfig returns the config of the moment for one handshake; nil
// keeps the listener's own.
func (s *Server) handshakeConfig(*tls.ClientHelloInfo) (*tls.Config, error) {
	if l := s.cert.Load(); l != nil {
		return l.conf, nil
	}
	return nil, nil
}

// loadCertificate reads the files of the tls section, to be swapped in
// once the whole reload has succeeded; nil without a tls section.
func (s *Server) loadCertificate(cfg *config.Config) (*listenerTLS, error) {
	t := cfg.TLS
	if t == nil {
		return nil, nil
	}
	conf := &tls.Config{
		GetCertificate: s.certificate,
		NextProtos:     []string{"h2", "http/1.1"},
		MinVersion:     tls.VersionTLS12,
	}
	if t.MinVersion == "1.3" {
		conf.MinVersion = tls.VersionTLS13
	}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: client_ca_file %s: no PEM certificate found", t.ClientCAFile)
		}
		// Required, not requested: a client without a certificate the
		// CAs signed does not get in at all.
		conf.ClientAuth = tls.RequireAndVerifyClientCert
		conf.ClientCAs = pool
	}
	if managedTLS(t) {
		return s.loadManaged(cfg, conf)
	}
	stamp := fileStamp(t.CertFile, t.KeyFile)
	c, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	l := &listenerTLS{cert: &c, conf: conf, certFile: t.CertFile, keyFile: t.KeyFile, stamp: stamp}
	l.checked.Store(time.Now().UnixNano())
	return l, nil
}
