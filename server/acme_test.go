package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/edgecert"
	"github.com/tbsphathuynh/proxy/metrics"
)

// acmeProxy starts a proxy from yaml (with listen and everything else
// given), with certTuning's renewal timings, and stops it when the test
// ends; stop stops it sooner.
func acmeProxy(t *testing.T, yaml string, tuning edgecert.Options, logTo io.Writer) (s *Server, stop func()) {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if logTo == nil {
		logTo = io.Discard
	}
	s, err = New(cfg, Options{Logger: slog.New(slog.NewJSONHandler(logTo, nil))})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	s.certTuning = tuning
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	}
	t.Cleanup(stop)
	return s, stop
}

// acmeYAML is a proxy config obtaining a certificate for localhost from
// pebble through the given challenges.
func acmeYAML(listen, redirect, backendURL, storage string, p *pebbleCA, challenges string) string {
	y := fmt.Sprintf(`listen: %q
admin: {listen: "127.0.0.1:0"}
logging: {access_log: "off"}
health_checks: {enabled: false}
servers: [{url: %q}]
tls:
  acme:
    email: ops@example.com
    domains: [localhost]
    ca: %q
    ca_root: %q
    storage: %q
    challenges: [%s]
`, listen, backendURL, p.directory, p.caRoot, storage, challenges)
	if redirect != "" {
		y += fmt.Sprintf("http_redirect: %q\n", redirect)
	}
	return y
}

// The certificate comes from the ACME CA through each challenge, answered
// on the proxy's own listeners, and a client trusting only the CA's root
// gets through the proxy to the server.
func TestACMECertificateIssuedAndServed(t *testing.T) {
	for _, tc := range []struct{ name, challenges string }{
		{"http-01", "http-01"},
		{"tls-alpn-01", "tls-alpn-01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listen, redirect := freeAddr(t), freeAddr(t)
			p := startPebble(t, redirect, listen, 90*24*time.Hour)
			b := backend(t, "b", nil)
			s, _ := acmeProxy(t, acmeYAML(listen, redirect, b.URL, t.TempDir(), p, tc.challenges), edgecert.Options{}, nil)

			status, body, _ := get(t, p.client("localhost"), "https://"+s.Addr()+"/")
			if status != 200 || body != "b" {
				t.Fatalf("GET through the proxy: %d %q, want 200 from the server", status, body)
			}
			if n := p.orders.Load(); n != 1 {
				t.Errorf("orders at the CA = %d, want 1", n)
			}
			leaf := servedCert(t, s.Addr(), "localhost", p.roots)
			if !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
				t.Errorf("issuer %q, want Pebble's intermediate", leaf.Issuer.CommonName)
			}
		})
	}
}

// The admin API and the expiry gauge show the certificate: where it came
// from, who issued it and when it expires.
func TestACMECertificateListedAndMeasured(t *testing.T) {
	listen, redirect := freeAddr(t), freeAddr(t)
	p := startPebble(t, redirect, listen, 90*24*time.Hour)
	b := backend(t, "b", nil)
	s, _ := acmeProxy(t, acmeYAML(listen, redirect, b.URL, t.TempDir(), p, "http-01"), edgecert.Options{}, nil)
	leaf := servedCert(t, s.Addr(), "localhost", p.roots)

	certs := apiCertificates(t, s)
	if len(certs) != 1 {
		t.Fatalf("/api/certificates: %+v, want one", certs)
	}
	c := certs[0]
	if c.Domain != "localhost" || c.Source != "acme" || c.NotAfter == nil || !c.NotAfter.Equal(leaf.NotAfter) || c.Issuer != leaf.Issuer.CommonName || c.LastError != "" {
		t.Errorf("/api/certificates: %+v, want localhost from acme, issued by %q, expiring %v", c, leaf.Issuer.CommonName, leaf.NotAfter)
	}
	left := expirySeconds(t, s, "localhost")
	if want := time.Until(leaf.NotAfter).Seconds(); left < want-60 || left > want+1 {
		t.Errorf("%s{domain=localhost} = %v, want about %v", metrics.TLSCertificateExpiry, left, want)
	}
}

// Renewal happens in the background, without a restart: with a short
// validity the served certificate is replaced by a new one from the CA.
func TestACMECertificateRenewedWithoutRestart(t *testing.T) {
	listen, redirect := freeAddr(t), freeAddr(t)
	p := startPebble(t, redirect, listen, time.Minute)
	b := backend(t, "b", nil)
	tuning := edgecert.Options{
		RenewCheckInterval: 100 * time.Millisecond,
		// Due after a few seconds of the minute, not at once: the
		// first certificate is served before it is renewed.
		RenewalWindowRatio: 0.9,
		DisableARI:         true,
	}
	s, _ := acmeProxy(t, acmeYAML(listen, redirect, b.URL, t.TempDir(), p, "tls-alpn-01"), tuning, nil)
	first := servedCert(t, s.Addr(), "localhost", p.roots)
	deadline := time.Now().Add(time.Minute)
	for {
		if next := servedCert(t, s.Addr(), "localhost", p.roots); next.SerialNumber.Cmp(first.SerialNumber) != 0 {
			if !next.NotAfter.After(first.NotAfter) {
				t.Errorf("renewed certificate expires %v, not after the first's %v", next.NotAfter, first.NotAfter)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificate %v not renewed within a minute of a one-minute validity (orders: %d)", first.SerialNumber, p.orders.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := p.orders.Load(); n < 2 {
		t.Errorf("orders at the CA = %d, want a second for the renewal", n)
	}
}

// A restart with the same storage serves the certificate it kept: no new
// order at the CA, the same serial.
func TestACMECertificateReusedAfterRestart(t *testing.T) {
	listen, redirect := freeAddr(t), freeAddr(t)
	p := startPebble(t, redirect, listen, 90*24*time.Hour)
	b := backend(t, "b", nil)
	storage := t.TempDir()
	yaml := acmeYAML(listen, redirect, b.URL, storage, p, "http-01, tls-alpn-01")
	s, stop := acmeProxy(t, yaml, edgecert.Options{}, nil)
	first := servedCert(t, s.Addr(), "localhost", p.roots)
	stop()

	s, _ = acmeProxy(t, yaml, edgecert.Options{}, nil)
	again := servedCert(t, s.Addr(), "localhost", p.roots)
	if again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("after a restart the proxy serves serial %v, want the stored %v", again.SerialNumber, first.SerialNumber)
	}
	if n := p.orders.Load(); n != 1 {
		t.Errorf("orders at the CA = %d, want the one before the restart", n)
	}
}

// A CA that refuses stops the start, and the log carries the CA's
// problem document, not just "failed".
func TestACMEFailureLoggedWithProblemDetail(t *testing.T) {
	listen, redirect := freeAddr(t), freeAddr(t)
	// The validation authority knocks on a port nobody answers.
	p := startPebble(t, freeAddr(t), listen, 90*24*time.Hour)
	b := backend(t, "b", nil)
	cfg, err := config.Parse("test.yaml", []byte(acmeYAML(listen, redirect, b.URL, t.TempDir(), p, "http-01")))
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	s, err := New(cfg, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start()
	if err == nil {
		_ = s.Shutdown(context.Background())
		t.Fatal("Start succeeded without a certificate")
	}
	if !strings.Contains(err.Error(), "localhost") {
		t.Errorf("Start: %v, want the name that failed", err)
	}
	if !strings.Contains(logs.String(), "urn:ietf:params:acme:error:") {
		t.Errorf("log has no ACME problem type; log:\n%s", logs.String())
	}
}

// tls.internal issues from a local CA whose root is kept in storage: a
// client trusting that root gets through, and a restart keeps the root.
func TestInternalCA(t *testing.T) {
	b := backend(t, "b", nil)
	storage := t.TempDir()
	yaml := fmt.Sprintf(`listen: "127.0.0.1:0"
admin: {listen: "127.0.0.1:0"}
logging: {access_log: "off"}
health_checks: {enabled: false}
servers: [{url: %q}]
tls: {internal: true, acme: {storage: %q}}
`, b.URL, storage)
	s, stop := acmeProxy(t, yaml, edgecert.Options{}, nil)
	rootPEM, err := os.ReadFile(filepath.Join(storage, "internal", "root.pem"))
	if err != nil {
		t.Fatalf("local CA root: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatal("root.pem holds no certificate")
	}
	for _, name := range []string{"localhost", "dev.test"} {
		c := &pebbleCA{roots: roots}
		status, body, _ := get(t, c.client(name), "https://"+s.Addr()+"/")
		if status != 200 || body != "b" {
			t.Fatalf("GET as %s: %d %q", name, status, body)
		}
	}
	certs := apiCertificates(t, s)
	if len(certs) != 2 || certs[0].Source != "internal" {
		t.Errorf("/api/certificates: %+v, want localhost and dev.test from internal", certs)
	}
	stop()

	s, _ = acmeProxy(t, yaml, edgecert.Options{}, nil)
	servedCert(t, s.Addr(), "localhost", roots) // verified against the first root
}

type apiCert struct {
	Domain    string     `json:"domain"`
	Issuer    string     `json:"issuer"`
	NotAfter  *time.Time `json:"not_after"`
	Source    string     `json:"source"`
	LastError string     `json:"last_error"`
}

func apiCertificates(t *testing.T, s *Server) []apiCert {
	t.Helper()
	resp, err := http.Get("http://" + s.AdminAddr() + "/api/certificates")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Certificates []apiCert }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Certificates
}

// expirySeconds scrapes proxy_tls_certificate_expiry_seconds{domain}.
func expirySeconds(t *testing.T, s *Server, domain string) float64 {
	t.Helper()
	_, body, _ := get(t, http.DefaultClient, "http://"+s.AdminAddr()+"/metrics")
	prefix := metrics.TLSCertificateExpiry + `{domain="` + domain + `"} `
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", prefix)
	return 0
}

// A reload keeps the certificates while tls.acme is unchanged, swaps to
// new settings once they have their certificates, and refuses settings
// the CA does not issue for, keeping the current certificate; each way
// exactly one certificate manager is left running.
func TestACMEReload(t *testing.T) {
	listen, redirect := freeAddr(t), freeAddr(t)
	p := startPebble(t, redirect, listen, 90*24*time.Hour)
	b := backend(t, "b", nil)
	storage := t.TempDir()
	path := filepath.Join(t.TempDir(), "proxy.yaml")
	write := func(y string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(acmeYAML(listen, redirect, b.URL, storage, p, "tls-alpn-01"))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	first := servedCert(t, s.Addr(), "localhost", p.roots)

	// Unchanged: the same manager, no order.
	if err := s.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if n := p.orders.Load(); n != 1 {
		t.Errorf("orders after a reload with the same settings = %d, want 1", n)
	}
	if n := certManagers(); n != 1 {
		t.Errorf("%d certificate managers running, want 1", n)
	}

	// Changed, in a new storage: the new certificate is obtained over
	// the open listeners (http-01 on http_redirect) before the swap.
	write(acmeYAML(listen, redirect, b.URL, t.TempDir(), p, "http-01"))
	if err := s.Reload(); err != nil {
		t.Fatalf("reload with new acme settings: %v", err)
	}
	second := servedCert(t, s.Addr(), "localhost", p.roots)
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 || p.orders.Load() != 2 {
		t.Errorf("after the change the proxy serves serial %v (first %v), orders %d; want a new certificate", second.SerialNumber, first.SerialNumber, p.orders.Load())
	}
	if n := certManagers(); n != 1 {
		t.Errorf("%d certificate managers running after the change, want 1", n)
	}

	// Refused: a CA that is not there. The reload fails and says why;
	// the current certificate keeps serving.
	dead := &pebbleCA{directory: "https://" + freeAddr(t) + "/dir", caRoot: p.caRoot}
	write(acmeYAML(listen, redirect, b.URL, t.TempDir(), dead, "http-01"))
	err = s.Reload()
	if err == nil || !strings.Contains(err.Error(), "keeping the current ones") {
		t.Fatalf("reload to an unreachable CA: %v, want a refusal", err)
	}
	if again := servedCert(t, s.Addr(), "localhost", p.roots); again.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Errorf("after a refused reload the proxy serves %v, want %v", again.SerialNumber, second.SerialNumber)
	}
	if n := certManagers(); n != 1 {
		t.Errorf("%d certificate managers running after a refused reload, want 1", n)
	}
}

// certManagers counts certmagic caches whose maintenance goroutine runs.
func certManagers() int {
	buf := make([]byte, 1<<20)
	for {
		n := goruntime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "certmagic.(*Cache).maintainAssets(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// Certificate files show in /api/certificates and the expiry gauge too.
func TestCertificateFilesListedAndMeasured(t *testing.T) {
	p := newPKI(t)
	be := backend(t, "a", nil)
	px := startProxy(t, fmt.Sprintf("admin: {listen: \"127.0.0.1:0\"}\ntls: {cert_file: %s, key_file: %s}\nservers:\n"+servers(be), p.serverCert, p.serverKey))
	leaf := servedCert(t, px.Addr(), "backend.test", p.serverCA.Pool())
	certs := apiCertificates(t, px)
	if len(certs) != 1 || certs[0].Domain != "backend.test" || certs[0].Source != "file" || certs[0].NotAfter == nil || !certs[0].NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("/api/certificates: %+v, want backend.test from a file expiring %v", certs, leaf.NotAfter)
	}
	left := expirySeconds(t, px, "backend.test")
	if want := time.Until(leaf.NotAfter).Seconds(); left < want-60 || left > want+1 {
		t.Errorf("%s{domain=backend.test} = %v, want about %v", metrics.TLSCertificateExpiry, left, want)
	}
}

// on_demand obtains a certificate at the first handshake for a name the
// ask URL approves, and none for a name it refuses.
func TestACMEOnDemandAsks(t *testing.T) {
	listen := freeAddr(t)
	p := startPebble(t, freeAddr(t), listen, 90*24*time.Hour)
	b := backend(t, "b", nil)
	var asked logBuffer
	ask := backend(t, "ask", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(&asked, "%s;", r.URL.Query().Get("domain"))
		if r.URL.Query().Get("domain") != "localhost" {
			w.WriteHeader(http.StatusForbidden)
		}
	})
	yaml := fmt.Sprintf(`listen: %q
admin: {listen: ""}
logging: {access_log: "off"}
health_checks: {enabled: false}
servers: [{url: %q}]
tls:
  acme: {on_demand: true, ask: %q, ca: %q, ca_root: %q, storage: %q, challenges: [tls-alpn-01]}
`, listen, b.URL, ask.URL, p.directory, p.caRoot, t.TempDir())
	s, _ := acmeProxy(t, yaml, edgecert.Options{}, nil)
	if n := p.orders.Load(); n != 0 {
		t.Fatalf("orders before any handshake = %d, want 0", n)
	}
	status, body, _ := get(t, p.client("localhost"), "https://"+s.Addr()+"/")
	if status != 200 || body != "b" {
		t.Fatalf("GET as localhost: %d %q", status, body)
	}
	if _, err := tls.Dial("tcp", s.Addr(), &tls.Config{RootCAs: p.roots, ServerName: "refused.test"}); err == nil {
		t.Error("handshake as a name the ask URL refuses succeeded")
	}
	if n := p.orders.Load(); n != 1 {
		t.Errorf("orders = %d, want 1 (localhost only)", n)
	}
	if got := asked.String(); !strings.Contains(got, "localhost;") || !strings.Contains(got, "refused.test;") {
		t.Errorf("ask URL asked for %q, want localhost and refused.test", got)
	}
}

// A restart while the CA is away still serves the stored certificate,
// even one due for renewal; the failed renewal is the last error.
func TestACMERestartWithTheCAAway(t *testing.T) {
	listen, redirect := freeAddr(t), freeAddr(t)
	p := startPebble(t, redirect, listen, time.Minute)
	b := backend(t, "b", nil)
	storage := t.TempDir()
	s, stop := acmeProxy(t, acmeYAML(listen, redirect, b.URL, storage, p, "tls-alpn-01"), edgecert.Options{DisableARI: true}, nil)
	first := servedCert(t, s.Addr(), "localhost", p.roots)
	stop()

	p.stop()
	// Due at once: renewal wanted while 99.9% of the minute is left.
	due := edgecert.Options{RenewalWindowRatio: 0.999, DisableARI: true}
	s, _ = acmeProxy(t, acmeYAML(listen, redirect, b.URL, storage, p, "tls-alpn-01"), due, nil)
	if again := servedCert(t, s.Addr(), "localhost", p.roots); again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("serves %v, want the stored %v", again.SerialNumber, first.SerialNumber)
	}
	if certs := apiCertificates(t, s); len(certs) != 1 || certs[0].LastError == "" {
		t.Errorf("/api/certificates: %+v, want the failed renewal as last_error", certs)
	}
}
