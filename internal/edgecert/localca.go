package edgecert

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"time"

	"github.com/caddyserver/certmagic"
)

// Storage keys of the local CA's root; under FileStorage they are files
// below the storage directory.
const (
	rootCertKey = "internal/root.pem"
	rootKeyKey  = "internal/root.key"
)

// Lifetimes of the local CA's certificates: the root lasts as long as a
// developer's trust in it should, leaves a week, renewed by certmagic
// like any other (at a third of their life left).
const (
	rootLifetime = 10 * 365 * 24 * time.Hour
	leafLifetime = 7 * 24 * time.Hour
)

// localCA is a certmagic.Issuer that signs with a root kept in storage, so
// a root trusted once stays trusted across restarts.
type localCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var _ certmagic.Issuer = (*localCA)(nil)

// loadLocalCA reads the root from storage, creating it the first time.
func loadLocalCA(ctx context.Context, st certmagic.Storage) (*localCA, error) {
	certPEM, err := st.Load(ctx, rootCertKey)
	if errors.Is(err, fs.ErrNotExist) {
		return newLocalCA(ctx, st)
	}
	if err != nil {
		return nil, err
	}
	keyPEM, err := st.Load(ctx, rootKeyKey)
	if err != nil {
		return nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("%s or %s is not PEM", rootCertKey, rootKeyKey)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rootCertKey, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rootKeyKey, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", rootKeyKey)
	}
	return &localCA{cert: cert, key: signer}, nil
}

func newLocalCA(ctx context.Context, st certmagic.Storage) (*localCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "proxy local CA " + now.UTC().Format(time.DateOnly)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(rootLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The root signs leaves directly; no intermediate below it.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := st.Store(ctx, rootKeyKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})); err != nil {
		return nil, err
	}
	if err := st.Store(ctx, rootCertKey, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return nil, err
	}
	return &localCA{cert: cert, key: key}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on the systems Go supports.
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

// Issue signs a leaf for the names of csr.
func (ca *localCA) Issue(_ context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, err
	}
	now := time.Now()
	notAfter := now.Add(leafLifetime)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial(),
		Subject:        pkix.Name{CommonName: firstName(csr)},
		NotBefore:      now.Add(-time.Minute),
		NotAfter:       notAfter,
		DNSNames:       csr.DNSNames,
		IPAddresses:    csr.IPAddresses,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		AuthorityKeyId: ca.cert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	return &certmagic.IssuedCertificate{Certificate: chain}, nil
}

func firstName(csr *x509.CertificateRequest) string {
	if len(csr.DNSNames) > 0 {
		return csr.DNSNames[0]
	}
	if len(csr.IPAddresses) > 0 {
		return csr.IPAddresses[0].String()
	}
	return csr.Subject.CommonName
}

// IssuerKey keeps the local CA's certificates apart from an ACME CA's in
// storage.
func (ca *localCA) IssuerKey() string { return "local" }
