package h1

import (
	"bytes"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/internal/rawhttp"
)

// browserHead is a typical request head, about what a browser sends.
const browserHead = "GET /static/app.js?v=42 HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: */*\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Referer: https://www.example.com/\r\n" +
	"Cookie: session=0123456789abcdef; theme=dark\r\n" +
	"Connection: keep-alive\r\n" +
	"\r\n"

func BenchmarkParseHead(b *testing.B) {
	buf := []byte(browserHead)
	var h head
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, v := parseHead(buf, &h); v != accept {
			b.Fatal("not accepted")
		}
	}
}

// BenchmarkBuildRequest is the head parsed and turned into the handler's
// *http.Request: one allocation, the string every field shares.
func BenchmarkBuildRequest(b *testing.B) {
	src := []byte(browserHead)
	buf := make([]byte, len(src))
	st := getState()
	proto := &http.Request{}
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, src)
		n, v := parseHead(buf, &st.head)
		if v != accept || !st.build(buf[:n], proto) {
			b.Fatal("not accepted")
		}
		clear(st.header)
	}
}

// BenchmarkServe is whole keep-alive exchanges over loopback: a client
// sends the browser head, the handler answers 1 KiB with a few headers.
// Allocations are the server's (the client reuses its buffers).
func BenchmarkServe(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := New(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/javascript"}
		h["Cache-Control"] = []string{"max-age=3600"}
		h["Content-Length"] = []string{"1024"}
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	}), IdleTimeout: time.Minute})
	go s.Serve(ln)
	defer s.Close()

	rawhttp.Drive(b, ln.Addr().String(), []byte(browserHead))
}
