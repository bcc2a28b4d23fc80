package server

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tbsphathuynh/proxy/internal/testcert"
)

// pki is a test's certificates: a CA for servers and one for clients,
// with a server certificate for backend.test and 127.0.0.1 and a client
// certificate for alice, all written to files.
type pki struct {
	serverCA, clientCA         *testcert.CA
	serverCAFile, clientCAFile string
	serverCert, serverKey      string
	clientCert, clientKey      string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{
		serverCAFile: filepath.Join(dir, "server-ca.pem"), clientCAFile: filepath.Join(dir, "client-ca.pem"),
		serverCert: filepath.Join(dir, "server.pem"), serverKey: filepath.Join(dir, "server.key"),
		clientCert: filepath.Join(dir, "client.pem"), clientKey: filepath.Join(dir, "client.key"),
	}
	var err error
	if p.serverCA, err = testcert.NewCA("server CA"); err != nil {
		t.Fatal(err)
	}
	if p.clientCA, err = testcert.NewCA("client CA"); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		p.serverCA.WriteCert(p.serverCAFile),
		p.clientCA.WriteCert(p.clientCAFile),
		p.serverCA.Write(testcert.Leaf{CommonName: "backend.test", DNSNames: []string{"backend.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, p.serverCert, p.serverKey),
		p.clientCA.Write(testcert.Leaf{CommonName: "alice", Client: true}, p.clientCert, p.clientKey),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// clientPair loads the client certificate.
func (p *pki) clientPair(t *testing.T) tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(p.clientCert, p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mtlsBackend is an https server with the server certificate that
// requires a client certificate from the client CA, and answers with the
// CN of the one it got. It counts the health checks it verified.
func mtlsBackend(t *testing.T, p *pki, checks *atomic.Int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
		if r.URL.Path == "/health" && checks != nil {
			checks.Add(1)
		}
		io.WriteString(w, "hello "+cn)
	}))
	pair, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.clientCA.Pool()}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// A server's tls section sets whom the proxy trusts, the name it checks
// and the certificate it shows: a server with a private CA that requires
// client certificates is reached, and without the section it is not.
func TestUpstreamTLSPerServer(t *testing.T) {
	p := newPKI(t)
	be := mtlsBackend(t, p, nil)
	withTLS := fmt.Sprintf("servers:\n  - url: %s\n    tls: {ca_file: %s, server_name: backend.test, cert_file: %s, key_file: %s}\n",
		be.URL, p.serverCAFile, p.clientCert, p.clientKey)
	for _, mode := range []struct{ name, yaml string }{{"fast path", ""}, {"fast path off", "client: {fast_path: false}\n"}} {
		t.Run(mode.name, func(t *testing.T) {
			px := startProxy(t, mode.yaml+withTLS)
			if code, body, _ := get(t, http.DefaultClient, "http://"+px.Addr()+"/"); code != 200 || body != "hello alice" {
				t.Errorf("through the proxy: %d %q, want 200 \"hello alice\"", code, body)
			}
		})
	}
	t.Run("without tls section", func(t *testing.T) {
		px := startProxy(t, "servers:\n  - url: "+be.URL+"\n")
		if code, _, _ := get(t, http.DefaultClient, "http://"+px.Addr()+"/"); code != http.StatusBadGateway {
			t.Errorf("server with an unknown CA answered %d through the proxy, want 502", code)
		}
	})
	t.Run("wrong server_name", func(t *testing.T) {
		px := startProxy(t, strings.Replace(withTLS, "server_name: backend.test", "server_name: other.test", 1))
		if code, _, _ := get(t, http.DefaultClient, "http://"+px.Addr()+"/"); code != http.StatusBadGateway {
			t.Errorf("certificate for another name: %d, want 502", code)
		}
	})
}

// Health checks reach an https server with its own TLS settings: the
// server only answers a client certificate the settings name.
func TestHealthChecksUseServerTLS(t *testing.T) {
	p := newPKI(t)
	var checks atomic.Int64
	be := mtlsBackend(t, p, &checks)
	startProxy(t, fmt.Sprintf("health_checks: {interval: 50ms, timeout: 50ms, path: /health}\nservers:\n  - url: %s\n    tls: {ca_file: %s, server_name: backend.test, cert_file: %s, key_file: %s}\n",
		be.URL, p.serverCAFile, p.clientCert, p.clientKey))
	waitFor(t, "a health check with the client certificate", func() bool { return checks.Load() >= 2 })
}

// insecure_skip_verify reaches a server whatever its certificate, and
// says so at WARN every time the proxy starts.
func TestUpstreamInsecureSkipVerifyWarns(t *testing.T) {
	be := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(be.Close)
	var logs logBuffer
	px := startProxyLogging(t, "servers:\n  - url: "+be.URL+"\n    name: legacy\n    tls: {insecure_skip_verify: true}\n", &logs)
	if code, body, _ := get(t, http.DefaultClient, "http://"+px.Addr()+"/"); code != 200 || body != "ok" {
		t.Errorf("through the proxy: %d %q, want 200 ok", code, body)
	}
	var line map[string]any
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "insecure_skip_verify") {
			json.Unmarshal([]byte(l), &line)
		}
	}
	if line["level"] != "WARN" || line["server"] != "legacy" {
		t.Errorf("no WARN naming the server; log:\n%s", logs.String())
	}
}

// With tls.client_ca_file, only clients with a certificate the CA signed
// get in, and the access log names the verified subject.
func TestClientCertificatesRequired(t *testing.T) {
	p := newPKI(t)
	be := backend(t, "a", nil)
	logFile := filepath.Join(t.TempDir(), "access.log")
	px := startProxy(t, fmt.Sprintf("tls: {cert_file: %s, key_file: %s, client_ca_file: %s}\nlogging: {format: json, access_log: %s}\nservers:\n"+servers(be),
		p.serverCert, p.serverKey, p.clientCAFile, logFile))
	url := "https://" + px.Addr() + "/"
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.serverCA.Pool(), Certificates: certs}}}
	}
	if code, body, _ := get(t, client(p.clientPair(t)), url); code != 200 || body != "a" {
		t.Errorf("client with a certificate: %d %q, want 200 a", code, body)
	}
	if resp, err := client().Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("client without a certificate got %d, want the handshake refused", resp.StatusCode)
	}

	var line map[string]any
	waitFor(t, "an access log line", func() bool {
		f, err := os.Open(logFile)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		return sc.Scan() && json.Unmarshal(sc.Bytes(), &line) == nil
	})
	if got, want := line["tls_client_subject"], "CN=alice,O=proxy tests"; got != want {
		t.Errorf("access log tls_client_subject = %v, want %q", got, want)
	}
}

// A headers policy hands the verified subject to the servers, in place of
// any value the client sent.
func TestClientSubjectInAHeaderRule(t *testing.T) {
	p := newPKI(t)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Join(r.Header.Values("X-Client-Subject"), "|"))
	}))
	t.Cleanup(be.Close)
	px := startProxy(t, fmt.Sprintf("tls: {cert_file: %s, key_file: %s, client_ca_file: %s}\nservers: [{url: %s}]\n"+
		"routes:\n  - match: {path_prefix: /}\n    upstream: default\n    policies:\n      - headers: {request: {set: {X-Client-Subject: \"{tls_client_subject}\"}}}\n",
		p.serverCert, p.serverKey, p.clientCAFile, be.URL))
	url := "https://" + px.Addr() + "/"
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.serverCA.Pool(), Certificates: certs}}}
	}
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("X-Client-Subject", "CN=mallory")
	resp, err := client(p.clientPair(t)).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got, want := string(body), "CN=alice,O=proxy tests"; got != want {
		t.Errorf("the server saw X-Client-Subject %q, want %q", got, want)
	}
}

// tls.min_version: "1.3" refuses a client that offers at most TLS 1.2.
func TestTLSMinVersion(t *testing.T) {
	p := newPKI(t)
	be := backend(t, "a", nil)
	px := startProxy(t, fmt.Sprintf("tls: {cert_file: %s, key_file: %s, min_version: \"1.3\"}\nservers:\n"+servers(be), p.serverCert, p.serverKey))
	for _, tc := range []struct {
		max uint16
		ok  bool
	}{{tls.VersionTLS12, false}, {tls.VersionTLS13, true}} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.serverCA.Pool(), MaxVersion: tc.max}}}
		resp, err := c.Get("https://" + px.Addr() + "/")
		if err == nil {
			resp.Body.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("client at most TLS %x: err %v, want ok=%v", tc.max, err, tc.ok)
		}
	}
}

// Renewed certificate files are served without a reload or restart.
func TestCertificateFilesReloadedWhenChanged(t *testing.T) {
	p := newPKI(t)
	be := backend(t, "a", nil)
	var logs logBuffer
	px := startProxyLogging(t, fmt.Sprintf("tls: {cert_file: %s, key_file: %s}\nservers:\n"+servers(be), p.serverCert, p.serverKey), &logs)
	served := func() string {
		c, err := tls.Dial("tcp", px.Addr(), &tls.Config{RootCAs: p.serverCA.Pool(), ServerName: "backend.test"})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "backend.test" {
		t.Fatalf("served %q at first", cn)
	}
	// Written beside and renamed into place, as certbot and cert-manager
	// do, so no handshake reads half a file.
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "new.pem"), filepath.Join(dir, "new.key")
	if err := p.serverCA.Write(testcert.Leaf{CommonName: "renewed", DNSNames: []string{"backend.test"}}, cert, key); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(key, p.serverKey); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(cert, p.serverCert); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the renewed certificate to be served", func() bool { return served() == "renewed" })
	if !strings.Contains(logs.String(), "new certificate in use") {
		t.Errorf("the change was not logged:\n%s", logs.String())
	}
}
