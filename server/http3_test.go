package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/tbsphathuynh/proxy/internal/edgecert"
	"github.com/tbsphathuynh/proxy/internal/testcert"
	"github.com/tbsphathuynh/proxy/metrics"
)

// h3Client is an HTTP/3 client trusting p's server CA; it is closed when
// the test ends.
func h3Client(t *testing.T, p *pki) *http.Client {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: p.serverCA.Pool()}}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr}
}

// h2Client is an HTTP/2 over TLS client trusting p's server CA.
func h2Client(t *testing.T, p *pki) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.serverCA.Pool()}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// echoBackend is an HTTP/1.1 server that answers a POST with 201 and the
// body it got, anything else with 200 and the method and path, naming
// itself and the protocol it was reached with in headers.
func echoBackend(t *testing.T) string {
	t.Helper()
	be := backend(t, "h1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend-Proto", r.Proto)
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			w.WriteHeader(http.StatusCreated)
			w.Write(b)
			return
		}
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
	})
	return servers(be)
}

// clientRequests reads proxy_client_requests_total{proto}.
func clientRequests(t *testing.T, s *Server, proto string) float64 {
	t.Helper()
	mfs, err := s.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metrics.ClientRequestsTotal {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == proto {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// With http3, a client speaking HTTP/3 reaches an HTTP/1.1 server through
// the proxy on the TLS port: methods, bodies, statuses and headers go
// through, and the access log and metrics say the request came over
// HTTP/3.
func TestHTTP3ThroughProxy(t *testing.T) {
	p := newPKI(t)
	logFile := filepath.Join(t.TempDir(), "access.log")
	px := startProxy(t, fmt.Sprintf("tls: {cert_file: %s, key_file: %s}\nhttp3: true\nlogging: {format: json, access_log: %s}\nservers:\n%s",
		p.serverCert, p.serverKey, logFile, echoBackend(t)))
	c := h3Client(t, p)
	base := "https://" + px.Addr()

	resp, err := c.Get(base + "/hello")
	if err != nil {
		t.Fatalf("GET over HTTP/3: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 3 || resp.StatusCode != 200 || string(b) != "GET /hello" {
		t.Errorf("GET: %s %d %q, want HTTP/3.0 200 \"GET /hello\"", resp.Proto, resp.StatusCode, b)
	}
	if got := resp.Header.Get("X-Backend"); got != "h1" {
		t.Errorf("X-Backend = %q, want the server's header relayed", got)
	}
	if got := resp.Header.Get("X-Backend-Proto"); got != "HTTP/1.1" {
		t.Errorf("the server was reached with %q, want HTTP/1.1", got)
	}
	if got := resp.Header.Get("Alt-Svc"); got != "" {
		t.Errorf("an HTTP/3 answer advertises Alt-Svc %q; the client is there already", got)
	}

	body := strings.Repeat("payload ", 64<<10) // 512 KiB: several flow control windows
	resp, err = c.Post(base+"/upload", "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST over HTTP/3: %v", err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || string(b) != body {
		t.Errorf("POST: %d with %d bytes, want 201 with the %d bytes sent", resp.StatusCode, len(b), len(body))
	}

	var lines []map[string]any
	waitFor(t, "two access log lines", func() bool {
		f, err := os.Open(logFile)
		if err != nil {
			return false
		}
		defer f.Close()
		lines = lines[:0]
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var l map[string]any
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				lines = append(lines, l)
			}
		}
		return len(lines) == 2
	})
	for _, l := range lines {
		if l["proto"] != "HTTP/3.0" {
			t.Errorf("access log proto = %v, want HTTP/3.0: %v", l["proto"], l)
		}
	}
	if n := clientRequests(t, px, "HTTP/3"); n != 2 {
		t.Errorf("proxy_client_requests_total{proto=\"HTTP/3\"} = %v, want 2", n)
	}
	if n := clientRequests(t, px, "HTTP/2"); n != 0 {
		t.Errorf("proxy_client_requests_total{proto=\"HTTP/2\"} = %v, want 0", n)
	}
}

// Answers over TLS on h1 and h2 advertise HTTP/3 on the same port, and
// only when it is on.
func TestAltSvcAdvertisesHTTP3(t *testing.T) {
	p := newPKI(t)
	tlsYAML := fmt.Sprintf("tls: {cert_file: %s, key_file: %s}\n", p.serverCert, p.serverKey)
	px := startProxy(t, tlsYAML+"http3: true\nservers:\n"+echoBackend(t))
	_, port, _ := net.SplitHostPort(px.Addr())
	want := `h3=":` + port + `"; ma=86400`

	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.serverCA.Pool()}}}
	for name, c := range map[string]*http.Client{"h2": h2Client(t, p), "h1": h1} {
		resp, err := c.Get("https://" + px.Addr() + "/")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
		if wantMajor := map[string]int{"h1": 1, "h2": 2}[name]; resp.ProtoMajor != wantMajor {
			t.Errorf("%s: answered over %s", name, resp.Proto)
		}
		if got := resp.Header.Values("Alt-Svc"); len(got) != 1 || got[0] != want {
			t.Errorf("%s: Alt-Svc = %q, want [%q]", name, got, want)
		}
	}
	if n := clientRequests(t, px, "HTTP/2"); n != 1 {
		t.Errorf("proxy_client_requests_total{proto=\"HTTP/2\"} = %v, want 1", n)
	}

	off := startProxy(t, tlsYAML+"servers:\n"+echoBackend(t))
	_, _, h := get(t, h2Client(t, p), "https://"+off.Addr()+"/")
	if got := h.Get("Alt-Svc"); got != "" {
		t.Errorf("without http3: Alt-Svc = %q, want none", got)
	}
}

// slowH3 returns the config of a proxy with HTTP/3 in front of a server
// that holds its answer to /slow until release is closed, and do, which
// starts an HTTP/3 GET /slow through px and returns once the server has
// it, with the channel its result comes on.
func slowH3(t *testing.T, p *pki, release chan struct{}) (yaml string, do func(px *Server) <-chan string) {
	started := make(chan struct{}, 1)
	be := backend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			return
		}
		started <- struct{}{}
		<-release
		io.WriteString(w, "finished")
	})
	yaml = fmt.Sprintf("tls: {cert_file: %s, key_file: %s}\nhttp3: true\nshutdown_timeout: 30s\nservers:\n%s", p.serverCert, p.serverKey, servers(be))
	do = func(px *Server) <-chan string {
		res := make(chan string, 1)
		c := h3Client(t, p)
		go func() {
			resp, err := c.Get("https://" + px.Addr() + "/slow")
			if err != nil {
				res <- "error: " + err.Error()
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				res <- "error: " + err.Error()
				return
			}
			res <- fmt.Sprintf("%d %s", resp.StatusCode, b)
		}()
		select {
		case <-started:
		case r := <-res:
			t.Fatalf("the request ended before the server had it: %s", r)
		}
		return res
	}
	return yaml, do
}

// Shutdown lets an HTTP/3 request in flight finish, as it does for h1 and
// h2, and returns once it has.
func TestHTTP3ShutdownFinishesInFlightRequest(t *testing.T) {
	p := newPKI(t)
	release := make(chan struct{})
	yaml, do := slowH3(t, p, release)
	px := startProxy(t, yaml)
	px.mu.Lock()
	h3 := px.h3
	px.mu.Unlock()
	res := do(px)

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stopped <- px.Shutdown(ctx)
	}()
	<-h3.stopping
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	case r := <-res:
		t.Fatalf("the request ended (%s) before its server answered", r)
	default:
	}
	close(release)
	if r := <-res; r != "200 finished" {
		t.Errorf("in-flight HTTP/3 request across Shutdown: %s, want 200 finished", r)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v, want nil once the request finished", err)
	}
}

// A reload that turns http3 off stops advertising it and lets the HTTP/3
// request in flight finish; one that keeps it keeps the listener.
func TestHTTP3ReloadOffFinishesInFlightRequest(t *testing.T) {
	p := newPKI(t)
	release := make(chan struct{})
	yaml, do := slowH3(t, p, release)
	px := startProxy(t, yaml)
	px.mu.Lock()
	first := px.h3
	px.mu.Unlock()

	reloadYAML(t, px, yaml)
	px.mu.Lock()
	kept := px.h3
	px.mu.Unlock()
	if kept != first {
		t.Fatal("a reload with the same settings replaced the HTTP/3 listener")
	}

	res := do(px)
	reloadYAML(t, px, strings.Replace(yaml, "http3: true\n", "", 1))
	<-first.stopping
	select {
	case r := <-res:
		t.Fatalf("the request ended (%s) before its server answered", r)
	default:
	}
	_, _, h := get(t, h2Client(t, p), "https://"+px.Addr()+"/")
	if got := h.Get("Alt-Svc"); got != "" {
		t.Errorf("after http3 was turned off: Alt-Svc = %q, want none", got)
	}
	close(release)
	if r := <-res; r != "200 finished" {
		t.Errorf("in-flight HTTP/3 request across the reload: %s, want 200 finished", r)
	}
}

// HTTP/3 takes its certificate and client checks from the TLS listener:
// a client without a certificate the client CA signed is refused, and
// renewed certificate files are served without a reload.
func TestHTTP3SharesTheListenersCertificates(t *testing.T) {
	p := newPKI(t)
	px := startProxy(t, fmt.Sprintf("tls: {cert_file: %s, key_file: %s, client_ca_file: %s}\nhttp3: true\nservers:\n%s",
		p.serverCert, p.serverKey, p.clientCAFile, echoBackend(t)))
	url := "https://" + px.Addr() + "/"
	// served is the CN of the certificate a new HTTP/3 connection gets.
	served := func(certs ...tls.Certificate) (string, error) {
		tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: p.serverCA.Pool(), Certificates: certs}}
		defer tr.Close()
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].Subject.CommonName, nil
	}
	if cn, err := served(); err == nil {
		t.Errorf("a client without a certificate got in over HTTP/3 (served %q)", cn)
	}
	if cn, err := served(p.clientPair(t)); err != nil || cn != "backend.test" {
		t.Fatalf("client with a certificate: %q, %v", cn, err)
	}

	dir := t.TempDir()
	cert, key := filepath.Join(dir, "new.pem"), filepath.Join(dir, "new.key")
	if err := p.serverCA.Write(testcert.Leaf{CommonName: "renewed", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, cert, key); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(key, p.serverKey); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(cert, p.serverCert); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the renewed certificate over HTTP/3", func() bool {
		cn, err := served(p.clientPair(t))
		return err == nil && cn == "renewed"
	})
}

// Certificates the proxy obtains itself (tls.internal here, ACME the same
// way) are served over HTTP/3 too.
func TestHTTP3WithManagedCertificates(t *testing.T) {
	b := backend(t, "b", nil)
	storage := t.TempDir()
	s, _ := acmeProxy(t, fmt.Sprintf(`listen: "127.0.0.1:0"
admin: {listen: ""}
logging: {access_log: "off"}
health_checks: {enabled: false}
servers: [{url: %q}]
tls: {internal: true, acme: {storage: %q}}
http3: true
`, b.URL, storage), edgecert.Options{}, nil)
	rootPEM, err := os.ReadFile(filepath.Join(storage, "internal", "root.pem"))
	if err != nil {
		t.Fatalf("local CA root: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatal("root.pem holds no certificate")
	}
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}
	defer tr.Close()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + s.Addr() + "/")
	if err != nil {
		t.Fatalf("GET over HTTP/3 with the local CA's certificate: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 3 || resp.StatusCode != 200 || string(body) != "b" {
		t.Errorf("GET: %s %d %q, want HTTP/3.0 200 \"b\"", resp.Proto, resp.StatusCode, body)
	}
}
