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
	if !c.files || t.CertFile == "" || t.KeyFile == "" {
		return
	}
	certPEM, certErr := os.ReadFile(t.CertFile)
	if certErr != nil {
		c.errf("tls.cert_file", "cannot read %s: %s", quote(t.CertFile), readReason(certErr))
	}
	keyPEM, keyErr := os.ReadFile(t.KeyFile)
	if keyErr != nil {
		c.errf("tls.key_file", "cannot read %s: %s", quote(t.KeyFile), readReason(keyErr))
	}
	if certErr != nil || keyErr != nil {
		return
	}
	leaf, msg := firstCertificate(certPEM)
	if msg != "" {
		c.errf("tls.cert_file", "%s: %s", quote(t.CertFile), msg)
		return
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		// The certificate parsed, so what is wrong is the key or the pair.
		c.errf("tls.key_file", "%s: %s", quote(t.KeyFile), strings.TrimPrefix(err.Error(), "tls: "))
		return
	}
	if now := time.Now(); now.After(leaf.NotAfter) {
		c.warnf("tls.cert_file", "%s expired on %s; clients will refuse it", quote(t.CertFile), leaf.NotAfter.UTC().Format(time.DateOnly))
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
