package server

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestTracingPropagatesToServers checks the wiring: with an OTLP endpoint
// set, the server receives a traceparent in the client's trace but with a
// new parent (the proxy's span), and spans reach the collector.
func TestTracingPropagatesToServers(t *testing.T) {
	var exports atomic.Int64
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" {
			exports.Add(1)
		}
		io.Copy(io.Discard, r.Body)
	}))
	defer collector.Close()
	var got atomic.Value
	a := backend(t, "a", func(w http.ResponseWriter, r *http.Request) { got.Store(r.Header.Get("Traceparent")) })
	p := startProxy(t, fmt.Sprintf("tracing: {otlp_endpoint: %s, sample_ratio: 1}\nservers: [{url: %s}]\n", collector.URL, a.URL))

	const trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest("GET", "http://"+p.Addr()+"/", nil)
	req.Header.Set("Traceparent", "00-"+trace+"-"+parent+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tp, _ := got.Load().(string)
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[1] != trace || parts[2] == parent {
		t.Errorf("server saw traceparent %q, want trace %s with the proxy's span as parent", tp, trace)
	}
	// Shutting down flushes the span to the collector.
	p.mu.Lock()
	tr := p.trace
	p.mu.Unlock()
	if err := tr.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if exports.Load() == 0 {
		t.Error("no span reached the OTLP endpoint")
	}
}
