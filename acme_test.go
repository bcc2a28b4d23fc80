package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// -validate checks tls.acme without contacting the CA or creating the
// storage: it must work offline, before the machine can reach the CA.
func TestValidateACMEOffline(t *testing.T) {
	var asked atomic.Int64
	ca := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { asked.Add(1) }))
	defer ca.Close()
	storage := filepath.Join(t.TempDir(), "acme")
	f := writeConfig(t, fmt.Sprintf("servers:\n  - url: http://127.0.0.1:9001\nhttp_redirect: %q\ntls:\n  acme:\n    domains: [example.com]\n    ca: %q\n    storage: %q\n    challenges: [http-01, tls-alpn-01]\n",
		freePort(t), ca.URL+"/dir", storage))
	if code, stdout, stderr := runBinary(t, "-validate", "-config", f); code != 0 {
		t.Fatalf("-validate: exit %d\n%s%s", code, stdout, stderr)
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("-validate sent %d requests to the CA, want none", n)
	}
	if _, err := os.Stat(storage); err == nil {
		t.Errorf("-validate created the storage %s", storage)
	}

	f = writeConfig(t, "servers:\n  - url: http://127.0.0.1:9001\ntls:\n  acme:\n    domains: [example.com]\n    challenges: [dns-01]\n")
	code, _, stderr := runBinary(t, "-validate", "-config", f)
	want := f + `:6:18: tls.acme.challenges[0]: unknown challenge "dns-01" (the proxy answers http-01 and tls-alpn-01)` + "\n"
	if code != 1 || stderr != want {
		t.Errorf("-validate with dns-01: exit %d, %q; want exit 1, %q", code, stderr, want)
	}
}

// tls.internal: the binary serves https with a certificate from its local
// CA, whose root it leaves in the storage for clients to trust.
func TestInternalCAThroughTheBinary(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "from the server") }))
	defer backend.Close()
	storage := t.TempDir()
	addr := freePort(t)
	f := writeConfig(t, fmt.Sprintf("listen: %q\nadmin: {listen: \"\"}\nservers:\n  - url: %s\ntls: {internal: true, acme: {storage: %q}}\n", addr, backend.URL, storage))
	p := start(t, "-config", f)
	p.waitLog(t, "proxy listening")
	rootPEM, err := os.ReadFile(filepath.Join(storage, "internal", "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		t.Fatalf("GET over the local CA's certificate: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "from the server") {
		t.Errorf("GET: %d %q", resp.StatusCode, body)
	}
}
