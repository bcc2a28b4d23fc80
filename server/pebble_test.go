package server

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// pebbleCA is Let's Encrypt's test ACME server, in process on loopback,
// validating challenges for real: its validation authority connects to
// the proxy's own listeners (http-01 to http_redirect, tls-alpn-01 to the
// TLS listener) at the address "localhost" resolves to.
type pebbleCA struct {
	// directory is the ACME directory URL; caRoot the PEM file that
	// trusts its https endpoint (tls.acme.ca_root).
	directory, caRoot string
	// roots trusts the certificates Pebble issues, as a client would.
	roots *x509.CertPool
	// orders counts new orders, so a test sees whether a certificate was
	// obtained or reused.
	orders atomic.Int64
	// stop takes the CA away: its address refuses connections.
	stop func()
}

// startPebble starts Pebble issuing certificates valid for validity, its
// validation authority aimed at httpAddr and tlsAddr (host:port of the
// proxy's listeners).
func startPebble(t *testing.T, httpAddr, tlsAddr string, validity time.Duration) *pebbleCA {
	t.Helper()
	// Pebble waits up to 5 s before each validation, to mimic a real CA;
	// without it the tests are only as slow as the exchanges.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	logger := log.New(io.Discard, "", 0)
	if testing.Verbose() {
		logger = log.New(os.Stderr, "pebble ", 0)
	}
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{
		"default": {Description: "test", ValidityPeriod: uint64(validity / time.Second)},
	})
	v := va.New(logger, portOf(t, httpAddr), portOf(t, tlsAddr), false, "", store)
	front := wfe.New(logger, store, v, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	p := &pebbleCA{}
	h := front.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/order-plz" {
			h.ServeHTTP(w, r)
			return
		}
		// Only orders created count: Pebble refuses a share of nonces
		// on purpose, and the client retries those requests.
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusCreated {
			p.orders.Add(1)
		}
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p.stop = srv.Close
	p.directory = srv.URL + "/dir"
	p.caRoot = filepath.Join(t.TempDir(), "pebble-wfe.pem")
	if err := os.WriteFile(p.caRoot, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	p.roots = x509.NewCertPool()
	p.roots.AddCert(authority.GetRootCert(0).Cert)
	return p
}

// client is an https client trusting Pebble's root, asking for name.
func (p *pebbleCA) client(name string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: p.roots, ServerName: name},
		DisableKeepAlives: true,
	}}
}

// servedCert is the leaf the proxy at addr serves for name, verified
// against roots.
func servedCert(t *testing.T, addr, name string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: name})
	if err != nil {
		t.Fatalf("TLS handshake with the proxy as %s: %v", name, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// statusRecorder notes the status an http.Handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}
