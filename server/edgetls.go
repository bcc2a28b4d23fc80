package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/tbsphathuynh/proxy/config"
)

// listenerTLS is what the main listener's handshakes use, loaded from the
// config's tls section and swapped in once a whole reload succeeded.
type listenerTLS struct {
	cert *tls.Certificate
	// conf is the handshake's config: the certificate through
	// GetCertificate, the minimum version, and client certificate
	// verification when tls.client_ca_file is set.
	conf *tls.Config
}

func (s *Server) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	l := s.cert.Load()
	if l == nil || l.cert == nil {
		return nil, errors.New("no certificate loaded")
	}
	return l.cert, nil
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
	c, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
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
	return &listenerTLS{cert: &c, conf: conf}, nil
}
