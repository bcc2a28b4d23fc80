package server

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tbsphathuynh/proxy/internal/accesslog"
	"github.com/tbsphathuynh/proxy/internal/rawhttp"
	"github.com/tbsphathuynh/proxy/internal/reqinfo"
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

// BenchmarkMetricsAndAccessLog measures what observability adds to each
// request: the access log line (JSON, all fields, to a discarding writer)
// and the metrics observation, around a handler that does nothing.
func BenchmarkMetricsAndAccessLog(b *testing.B) {
	srv := backend(b, "a", nil)
	p := startProxy(b, "servers:\n"+servers(srv))
	al, err := accesslog.NewAccessLog(slog.New(slog.NewJSONHandler(io.Discard, nil)), nil, 1)
	if err != nil {
		b.Fatal(err)
	}
	h := accesslog.Track(al, p.observe)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := reqinfo.From(r.Context())
		info.Route, info.Upstream, info.Server = "default", "default", "a"
		w.WriteHeader(200)
	}))
	req := httptest.NewRequest("GET", "http://example.com/bench", nil)
	// As the proxy's listeners give every connection (see reqinfo.Slot).
	req = req.WithContext(reqinfo.WithSlot(req.Context()))
	w := httptest.NewRecorder()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}

// BenchmarkProxyPath is whole proxied exchanges with nothing but the proxy
// allocating: a raw keep-alive client sends a browser-like request through
// the listener (the HTTP/1.1 fast path), the proxy forwards it over a
// pooled connection to a raw server answering 1 KiB, and the client reads
// the answer with reused buffers. Its allocs/op are the proxy's own per
// request.
//
// It runs on the direct lane, which serves such a request, and on the
// usual path (client.direct_lane: false), through the handler chain.
func BenchmarkProxyPath(b *testing.B) {
	be := rawhttp.Serve(b, rawhttp.Response(1024))
	for _, c := range []struct{ name, yaml string }{{"lane", ""}, {"usual", "client: {direct_lane: false}\n"}} {
		b.Run(c.name, func(b *testing.B) {
			p := startProxy(b, c.yaml+"servers: [{url: 'http://"+be+"'}]\n")
			rawhttp.Drive(b, p.Addr(), []byte("GET /static/app.js?v=42 HTTP/1.1\r\nHost: www.example.com\r\n"+
				"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0\r\n"+
				"Accept: */*\r\nAccept-Encoding: gzip, deflate, br\r\nCookie: session=0123456789abcdef\r\n\r\n"))
		})
	}
}

// A request of the direct lane allocates little enough that the collector
// seldom runs under load: its cycles slow every goroutine's turn while
// they mark, which set our p99 (docs/performance.md). The outbound request
// and the answer's memory are reused; what is left is the request ID.
func TestDirectLaneAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts of pooled paths mean nothing under -race")
	}
	be := rawhttp.Serve(t, rawhttp.Response(1024))
	p := startProxy(t, fastPathOn+"servers: [{url: 'http://"+be+"'}]\n")
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 16<<10)
	req := []byte("GET /static/app.js HTTP/1.1\r\nHost: www.example.com\r\nAccept: */*\r\n\r\n")
	exchange := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if err := rawhttp.SkipResponse(br); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		exchange() // fills the pools
	}
	if n := testing.AllocsPerRun(500, exchange); n > 1.5 {
		t.Errorf("%.2f allocations per request, want at most the request ID's 1", n)
	}
}
