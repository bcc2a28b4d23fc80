package server

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
)

// noFollow is a client that returns redirects as they are.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// http_redirect answers every request with a 308 to the same host and
// URI over https, on the TLS listener's port, whatever the method; a
// reload that moves it moves the listener.
func TestHTTPRedirect(t *testing.T) {
	p := newPKI(t)
	be := backend(t, "a", nil)
	redirect := freeAddr(t)
	tlsYAML := fmt.Sprintf("tls: {cert_file: %s, key_file: %s}\nservers:\n"+servers(be), p.serverCert, p.serverKey)
	px := startProxy(t, "http_redirect: "+redirect+"\n"+tlsYAML)
	_, port, _ := net.SplitHostPort(px.Addr())

	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, "http://"+redirect+"/shop/cart?id=7&x=%2F", strings.NewReader("body"))
		req.Host = "shop.example.com"
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := "https://shop.example.com:" + port + "/shop/cart?id=7&x=%2F"
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Errorf("%s: %d Location %q, want 308 %q", method, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}

	moved := freeAddr(t)
	reloadYAML(t, px, "http_redirect: "+moved+"\n"+tlsYAML)
	resp, err := noFollow.Get("http://" + moved + "/")
	if err != nil {
		t.Fatalf("moved redirect listener: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("moved redirect listener answered %d, want 308", resp.StatusCode)
	}
	waitFor(t, "the old redirect listener to close", func() bool {
		c, err := net.Dial("tcp", redirect)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
}

// hsts adds Strict-Transport-Security to answers over TLS.
func TestHSTS(t *testing.T) {
	p := newPKI(t)
	be := backend(t, "a", nil)
	px := startProxy(t, fmt.Sprintf("hsts: {max_age: 365d, include_subdomains: true}\ntls: {cert_file: %s, key_file: %s}\nservers:\n"+servers(be), p.serverCert, p.serverKey))
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.serverCA.Pool()}}}
	code, _, h := get(t, c, "https://"+px.Addr()+"/")
	if want := "max-age=31536000; includeSubDomains"; code != 200 || h.Get("Strict-Transport-Security") != want {
		t.Errorf("%d Strict-Transport-Security %q, want 200 %q", code, h.Get("Strict-Transport-Security"), want)
	}
}
