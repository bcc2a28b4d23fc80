package forward

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/internal/rawhttp"
	"github.com/tbsphathuynh/proxy/internal/reqinfo"
	"github.com/tbsphathuynh/proxy/upstream"
)

// stubTransport answers every request with the same 1 KiB response,
// reusing everything, so a benchmark counts the route's own work only.
type stubTransport struct {
	res  http.Response
	body stubBody
}

type stubBody struct{ bytes.Reader }

func (*stubBody) Close() error { return nil }

var kib = []byte(strings.Repeat("x", 1024))

func newStubTransport() *stubTransport {
	t := &stubTransport{}
	t.res = http.Response{
		StatusCode:    200,
		ContentLength: int64(len(kib)),
		Header: http.Header{
			"Content-Type":   {"application/octet-stream"},
			"Content-Length": {"1024"},
			"Date":           {"Thu, 26 Nov 2026 00:00:00 GMT"},
		},
	}
	return t
}

func (t *stubTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.body.Reset(kib)
	res := &t.res
	res.Body = &t.body
	res.Request = r
	return res, nil
}

// discardWriter is a ResponseWriter that keeps nothing but its header map,
// cleared between requests as net/http would start a new one.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

func benchRoute(b *testing.B, tr http.RoundTripper, servers int) (*Route, *upstream.Pool) {
	reg := upstream.NewRegistry()
	var list []*upstream.Server
	for i := range servers {
		u, _ := url.Parse("http://127.0.0.1:1")
		name := string(rune('a' + i))
		list = append(list, &upstream.Server{Name: name, URL: u, Weight: 1, State: reg.State(name)})
	}
	pool := upstream.NewPool("bench", list)
	up := &Upstream{Name: "bench", Pool: pool, Picker: first{}, Transport: tr}
	return NewRoute("r", up, "", slog.New(slog.NewTextHandler(io.Discard, nil))), pool
}

// BenchmarkRoute is the forwarder's own cost per request: building the
// outgoing request and its headers, picking, tracking in-flight, relaying
// the response headers and a 1 KiB body. The transport and the client's
// connection are stubs.
func BenchmarkRoute(b *testing.B) {
	rt, _ := benchRoute(b, newStubTransport(), 2)
	req := httptest.NewRequest("GET", "http://example.com/bench?q=1", nil)
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	req.RemoteAddr = "192.0.2.1:1234"
	info := &reqinfo.Info{RequestID: "0123456789abcdef0123456789abcdef"}
	req = req.WithContext(reqinfo.With(req.Context(), info))
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		rt.ServeHTTP(w, req)
	}
}

// BenchmarkOutHeader is the request header rewrite alone, for a request
// with a typical browser's headers and a forwarding chain.
func BenchmarkOutHeader(b *testing.B) {
	req := httptest.NewRequest("GET", "http://example.com/", nil)
	for k, v := range map[string]string{
		"User-Agent": "Mozilla/5.0", "Accept": "text/html", "Accept-Language": "en",
		"Accept-Encoding": "gzip", "Cookie": "a=b", "Connection": "keep-alive",
		"X-Forwarded-For": "203.0.113.7",
	} {
		req.Header.Set(k, v)
	}
	req.RemoteAddr = "192.0.2.1:1234"
	ob := new(outbound)
	b.ReportAllocs()
	for b.Loop() {
		ob.outHeader(req, "id", "")
	}
}

// BenchmarkCopyResponseHeader is the response header filter alone.
func BenchmarkCopyResponseHeader(b *testing.B) {
	src := http.Header{
		"Content-Type": {"text/html"}, "Content-Length": {"1024"}, "Date": {"x"},
		"Cache-Control": {"no-cache"}, "Keep-Alive": {"timeout=5"}, "Connection": {"keep-alive"},
	}
	dst := make(http.Header, 8)
	b.ReportAllocs()
	for b.Loop() {
		clear(dst)
		copyResponseHeader(dst, src)
	}
}

func benchRoundTrip(b *testing.B, rt http.RoundTripper) {
	url := "http://" + rawhttp.Serve(b, rawhttp.Response(1024)) + "/bench"
	req, _ := http.NewRequest("GET", url, nil)
	req.Header["User-Agent"] = []string{""}
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		res, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := res.Body.Read(buf); err != nil {
				break
			}
		}
		res.Body.Close()
	}
}

// BenchmarkClientRoundTrip is one body-less exchange with a loopback
// server through NewTransport, which hands it to this package's client.
func BenchmarkClientRoundTrip(b *testing.B) {
	tr := NewTransport(Timeouts{ResponseHeader: 10 * time.Second}, TransportOptions{})
	defer CloseIdleConnections(tr)
	benchRoundTrip(b, tr)
}

// BenchmarkTransportRoundTrip is the same exchange through a plain
// http.Transport with the same settings, for comparison.
func BenchmarkTransportRoundTrip(b *testing.B) {
	tr := &http.Transport{MaxIdleConnsPerHost: 1024, ResponseHeaderTimeout: 10 * time.Second, DisableCompression: true}
	defer tr.CloseIdleConnections()
	benchRoundTrip(b, tr)
}

// BenchmarkUpstreamNetHTTP is one body-less exchange with a loopback
// server through an Upstream whose transport is NewTransport's with the
// fast path off: http.Transport with the client trace and the
// connections that keep each answer's head (connection.go).
func BenchmarkUpstreamNetHTTP(b *testing.B) {
	tr := NewTransport(Timeouts{ResponseHeader: 10 * time.Second}, TransportOptions{NetHTTPOnly: true})
	defer CloseIdleConnections(tr)
	u, _ := url.Parse("http://" + rawhttp.Serve(b, rawhttp.Response(1024)))
	reg := upstream.NewRegistry()
	pool := upstream.NewPool("bench", []*upstream.Server{{Name: "a", URL: u, Weight: 1, State: reg.State("a")}})
	up := &Upstream{Name: "bench", Pool: pool, Picker: first{}, Transport: tr}
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("GET", "http://example.com/bench", nil)
		req.Header["User-Agent"] = []string{""}
		info := &reqinfo.Info{Informational: new(outbound)}
		req = req.WithContext(reqinfo.With(req.Context(), info))
		res, err := up.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := res.Body.Read(buf); err != nil {
				break
			}
		}
		res.Body.Close()
	}
}
