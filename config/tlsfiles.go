package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"strings"
	"time"
)

// tlsFiles reads the certificate and key as the proxy will at start, so
// that -validate and a reload catch a missing or mismatched file rather
// than the start that follows.
func (c *checker) tlsFiles(t *TLS) {
	c.keyPair("tls.", t.CertFile, t.KeyFile, "clients")
	c.caFile("tls.client_ca_file", t.ClientCAFile)
}

// keyPair reads a certificate and its key; p is the prefix of their keys
// ("tls." or "servers[0].tls."), and who says who refuses an expired one.
func (c *checker) keyPair(p, certFile, keyFile, who string) {
	if !c.files || certFile == "" || keyFile == "" {
		return
	}
	certPEM, certErr := os.ReadFile(certFile)
	if certErr != nil {
		c.errf(p+"cert_file", "cannot read %s: %s", quote(certFile), readReason(certErr))
	}
	keyPEM, keyErr := os.ReadFile(keyFile)
	if keyErr != nil {
		c.errf(p+"key_file", "cannot read %s: %s", quote(keyFile), readReason(keyErr))
	}
	if certErr != nil || keyErr != nil {
		return
	}
	leaf, msg := firstCertificate(certPEM)
	if msg != "" {
		c.errf(p+"cert_file", "%s: %s", quote(certFile), msg)
		return
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		// The certificate parsed, so what is wrong is the key or the pair.
		c.errf(p+"key_file", "%s: %s", quote(keyFile), strings.TrimPrefix(err.Error(), "tls: "))
		return
	}
	if now := time.Now(); now.After(leaf.NotAfter) {
		c.warnf(p+"cert_file", "%s expired on %s; %s will refuse it", quote(certFile), leaf.NotAfter.UTC().Format(time.DateOnly), who)
	}
}

// caFile reads a file of trusted CA certificates, as the proxy will: it
// must hold at least one.
func (c *checker) caFile(path, file string) {
	if !c.files || file == "" {
		return
	}
	data, err := os.ReadFile(file)
	if err != nil {
		c.errf(path, "cannot read %s: %s", quote(file), readReason(err))
		return
	}
	if _, msg := firstCertificate(data); msg != "" {
		c.errf(path, "%s: %s", quote(file), msg)
	}
}

// firstCertificate parses the first certificate of a PEM file, or says
// what the file holds instead.
func firstCertificate(data []byte) (*x509.Certificate, string) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		switch {
		case b == nil && bytes.Contains(data, []byte("PRIVATE KEY")):
			return nil, "holds a private key, not a certificate (are cert_file and key_file swapped?)"
		case b == nil:
			return nil, "no PEM certificate found (a file starting -----BEGIN CERTIFICATE-----)"
		case b.Type != "CERTIFICATE":
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, "not a valid certificate: " + strings.TrimPrefix(err.Error(), "x509: ")
		}
		return cert, ""
	}
}

// readReason is why a file could not be read, without the path the
// message already names.
func readReason(err error) string {
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
