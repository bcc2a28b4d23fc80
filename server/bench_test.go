package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var kib = strings.Repeat("x", 1024)

// BenchmarkHandler measures the proxy's own request path: routing, request
// ID, tracking, ReverseProxy and the transport to a loopback server, with
// the client side replaced by a recorder.
func BenchmarkHandler(b *testing.B) {
	srv := backend(b, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, kib) })
	p := startProxy(b, "servers:\n"+servers(srv))
	req := httptest.NewRequest("GET", "http://example.com/bench", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		p.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// BenchmarkEndToEnd measures a keep-alive client through the proxy's
// listener to a loopback server, in parallel.
func BenchmarkEndToEnd(b *testing.B) {
	srv := backend(b, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, kib) })
	p := startProxy(b, "servers:\n"+servers(srv))
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	url := "http://" + p.Addr() + "/bench"
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
