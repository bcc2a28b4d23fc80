package edgecert

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"

	"github.com/tbsphathuynh/proxy/config"
)

// The CA's problem document reaches the log and the API whole: type,
// detail and each subproblem, even wrapped by certmagic's messages.
func TestProblemTextSpellsOutTheProblem(t *testing.T) {
	p := acme.Problem{
		Type:   "urn:ietf:params:acme:error:rejectedIdentifier",
		Detail: "Error creating new order",
		Subproblems: []acme.Subproblem{{
			Problem:    acme.Problem{Type: "urn:ietf:params:acme:error:malformed", Detail: "Domain name contains an invalid character"},
			Identifier: acme.Identifier{Type: "dns", Value: "a_b.example.com"},
		}},
	}
	got := problemText(fmt.Errorf("[a_b.example.com] Obtain: %w", p))
	want := "urn:ietf:params:acme:error:rejectedIdentifier: Error creating new order; a_b.example.com: urn:ietf:params:acme:error:malformed: Domain name contains an invalid character"
	if got != want {
		t.Errorf("problemText = %q\nwant %q", got, want)
	}
	if got := problemText(errors.New("dial tcp: refused")); got != "dial tcp: refused" {
		t.Errorf("a plain error became %q", got)
	}
}

// The local CA keeps its root in storage: a second load signs with the
// same root, and its leaves verify against it for the CSR's names only.
func TestLocalCAKeepsItsRoot(t *testing.T) {
	st := &certmagic.FileStorage{Path: t.TempDir()}
	ctx := context.Background()
	ca1, err := loadLocalCA(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	ca2, err := loadLocalCA(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if !ca1.cert.Equal(ca2.cert) {
		t.Fatal("a second load made a new root")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"dev.test"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := ca2.Issue(ctx, csr)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(issued.Certificate)
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca1.cert)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "dev.test", Roots: roots}); err != nil {
		t.Errorf("leaf does not verify against the stored root: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.test", Roots: roots}); err == nil {
		t.Error("leaf verifies for a name it was not issued for")
	}
}

// A reload keeps the manager only when nothing of tls.acme changed.
func TestKeyChangesWithEverySetting(t *testing.T) {
	base := config.ACME{Domains: []string{"a.com"}, Storage: "/s"}
	seen := map[string]string{Key(&config.TLS{ACME: &base}): "base"}
	for name, change := range map[string]func(a *config.ACME){
		"email":      func(a *config.ACME) { a.Email = "x@y.z" },
		"domains":    func(a *config.ACME) { a.Domains = []string{"a.com", "b.com"} },
		"on_demand":  func(a *config.ACME) { a.OnDemand = true },
		"ask":        func(a *config.ACME) { a.Ask = "http://h/" },
		"ca":         func(a *config.ACME) { a.CA = "https://ca/" },
		"ca_root":    func(a *config.ACME) { a.CARoot = "/r.pem" },
		"storage":    func(a *config.ACME) { a.Storage = "/t" },
		"challenges": func(a *config.ACME) { a.Challenges = []string{"http-01"} },
	} {
		a := base
		change(&a)
		k := Key(&config.TLS{ACME: &a})
		if other, dup := seen[k]; dup {
			t.Errorf("changing %s gives the key of %s", name, other)
		}
		seen[k] = name
	}
	if Key(&config.TLS{ACME: &base, Internal: true}) == Key(&config.TLS{ACME: &base}) {
		t.Error("internal and acme share a key")
	}
}

// certmagic's log lines land in the proxy's log with their fields.
func TestZapLinesReachSlog(t *testing.T) {
	var b strings.Builder
	z := zapToSlog(slog.NewTextHandler(&b, nil).WithAttrs(nil))
	z.Named("acme").With().Error("could not get certificate", zap.String("identifier", "a.com"))
	if got := b.String(); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, `msg="could not get certificate"`) || !strings.Contains(got, "identifier=a.com") || !strings.Contains(got, "component=acme") {
		t.Errorf("log line %q", got)
	}
}
