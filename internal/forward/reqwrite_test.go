package forward

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tbsphathuynh/proxy/internal/httpsyntax"
)

// checkRequestHead compares writeRequestHead with req.Write on req: when
// the fast writer takes it, the bytes must be the same; when it declines,
// it must have written nothing. It reports whether the fast writer took it.
func checkRequestHead(t *testing.T, req *http.Request) bool {
	t.Helper()
	var fast bytes.Buffer
	bw := bufio.NewWriterSize(&fast, 64)
	ok := writeRequestHead(bw, req)
	if !ok && bw.Buffered() != 0 {
		t.Fatalf("declined after writing %d bytes", bw.Buffered())
	}
	bw.Flush()
	var want bytes.Buffer
	err := req.Write(&want)
	if !ok {
		return false
	}
	if err != nil {
		t.Fatalf("wrote %q for a request Request.Write refuses: %v", fast.String(), err)
	}
	if fast.String() != want.String() {
		t.Fatalf("head differs from Request.Write's\n got: %q\nwant: %q", fast.String(), want.String())
	}
	return true
}

func newReq(t *testing.T, method, target string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRequestHeadMatchesRequestWrite(t *testing.T) {
	with := func(r *http.Request, f func(*http.Request)) *http.Request { f(r); return r }
	cases := []struct {
		name string
		req  *http.Request
		fast bool // whether writeRequestHead must take it
	}{
		{"plain GET", newReq(t, "GET", "http://example.com/a/b"), true},
		{"empty method", with(newReq(t, "GET", "http://example.com/"), func(r *http.Request) { r.Method = "" }), true},
		{"empty path", newReq(t, "GET", "http://example.com"), true},
		{"query", newReq(t, "GET", "http://example.com/p?q=1&r=%20x"), true},
		{"force query", newReq(t, "GET", "http://example.com/p?"), true},
		{"port", newReq(t, "HEAD", "http://example.com:8080/"), true},
		{"IPv6", newReq(t, "GET", "http://[::1]:8080/x"), true},
		{"IPv6 zone", newReq(t, "GET", "http://[fe80::1%25eth0]:8080/x"), true},
		{"IPv6 zone no port", newReq(t, "GET", "http://[fe80::1%25eth0]/x"), true},
		{"Host field", with(newReq(t, "GET", "http://10.0.0.1:80/"), func(r *http.Request) { r.Host = "virtual.example" }), true},
		{"invalid host", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.Host = "bad host/\r\nX: y" }), true},
		{"unicode host", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.Host = "bücher.example" }), false},
		{"POST", newReq(t, "POST", "http://h/"), true},
		{"PUT", newReq(t, "PUT", "http://h/"), true},
		{"PATCH", newReq(t, "PATCH", "http://h/"), true},
		{"DELETE", newReq(t, "DELETE", "http://h/"), true},
		{"OPTIONS", newReq(t, "OPTIONS", "http://h/"), true},
		{"lower-case post", newReq(t, "post", "http://h/"), true},
		{"NoBody", with(newReq(t, "POST", "http://h/"), func(r *http.Request) { r.Body = http.NoBody }), true},
		{"UA set", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.Header.Set("User-Agent", " curl/8\r\n ") }), true},
		{"UA empty", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.Header["User-Agent"] = []string{""} }), true},
		{"UA nil", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.Header["User-Agent"] = nil }), true},
		{"UA space", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.Header["User-Agent"] = []string{" "} }), true},
		{"UA two", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.Header["User-Agent"] = []string{"a", "b"} }), true},
		{"UA lower-case key", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.Header["user-agent"] = []string{"x"} }), true},
		{"headers", with(newReq(t, "GET", "http://h/"), func(r *http.Request) {
			r.Header = http.Header{
				"Accept":            {"*/*"},
				"X-Multi":           {"a", " b ", "", "c\r\nInjected: 1", "\td\t"},
				"X-Empty":           {},
				"X-Nil":             nil,
				"Host":              {"ignored"},
				"Content-Length":    {"5"},
				"Transfer-Encoding": {"chunked"},
				"Trailer":           {"X"},
				"bad key":           {"dropped"},
				"":                  {"dropped"},
				"Bad\r\nKey":        {"dropped"},
				"lower":             {"kept"},
				"X-Non-ASCII":       {"héllo\x7f"},
				"Z":                 {"last"},
				"A":                 {"first"},
			}
		}), true},
		{"more keys than fit on the stack", with(newReq(t, "GET", "http://h/"), func(r *http.Request) {
			for i := range 3 * stackHeadKeys {
				r.Header[fmt.Sprintf("X-Key-%03d", 3*stackHeadKeys-i)] = []string{fmt.Sprint(i)}
			}
		}), true},
		{"nil header", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.Header = nil }), true},
		{"escaped path", newReq(t, "GET", "http://h/a%20b/c"), true},
		{"raw path", newReq(t, "GET", "http://h/a%2Fb"), true},
		{"star", with(newReq(t, "OPTIONS", "http://h/"), func(r *http.Request) { r.URL.Path = "*" }), true},
		{"opaque", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.URL.Opaque = "//other/x" }), true},
		{"path needs escaping", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.URL.Path = "/a b?c#d" }), true},
		{"CTL in query", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.URL.RawQuery = "a\nb" }), false},
		{"DEL in path", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.URL.RawPath = "/\x7f"; r.URL.Path = "/\x7f" }), true},
		{"CTL in opaque", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.URL.Opaque = "/\x01" }), false},
		{"content length", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.ContentLength = 3 }), false},
		{"close", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.Close = true }), false},
		{"transfer encoding", with(newReq(t, "GET", "http://h/"), func(r *http.Request) {
			r.Body = http.NoBody
			r.TransferEncoding = []string{"chunked"}
		}), false},
		{"body", newReqBody(t), false},
		{"connect", with(newReq(t, "GET", "http://h/"), func(r *http.Request) { r.Method = "CONNECT"; r.URL.Path = "" }), false},
		{"trace with Got1xxResponse only", with(newReq(t, "GET", "http://h/"), func(r *http.Request) {
			*r = *r.WithContext(httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{
				Got1xxResponse: func(int, textproto.MIMEHeader) error { return nil },
			}))
		}), true},
		{"trace with WroteHeaderField", with(newReq(t, "GET", "http://h/"), func(r *http.Request) {
			*r = *r.WithContext(httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{
				WroteHeaderField: func(string, []string) {},
			}))
		}), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkRequestHead(t, tc.req); got != tc.fast {
				t.Errorf("fast writer took it: %v, want %v", got, tc.fast)
			}
		})
	}
}

func newReqBody(t *testing.T) *http.Request {
	r, err := http.NewRequest("POST", "http://h/", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRequestHeadByteTables checks the byte tables against the code they
// stand for, byte by byte.
func TestRequestHeadByteTables(t *testing.T) {
	for c := 0; c < 256; c++ {
		s := string([]byte{byte(c)})
		if c < utf8.RuneSelf {
			r := &http.Request{Method: "GET", URL: &url.URL{Path: "/"}, Host: "a" + s + "b", Header: http.Header{}}
			var buf bytes.Buffer
			if err := r.Write(&buf); err != nil {
				t.Fatal(err)
			}
			got := strings.Contains(buf.String(), "\r\nHost: a")
			if got != validHostByte[c] {
				t.Errorf("byte %#x: valid in Host: %v, table says %v", c, got, validHostByte[c])
			}
		}
		h := http.Header{"A" + s: {"v"}}
		var buf bytes.Buffer
		h.Write(&buf)
		if got := buf.Len() > 0; got != httpsyntax.IsTchar(byte(c)) {
			t.Errorf("byte %#x: Header.Write keeps the key: %v, table says %v", c, got, httpsyntax.IsTchar(byte(c)))
		}
	}
}

func TestRequestHeadDoesNotAllocate(t *testing.T) {
	req := newReq(t, "GET", "http://10.0.0.7:8080/api/v1/items?limit=10")
	req.Host = "api.example.com"
	req.Header = http.Header{
		"Accept":            {"application/json"},
		"Accept-Encoding":   {"gzip, br"},
		"Cookie":            {"a=b; c=d"},
		"User-Agent":        {"Mozilla/5.0"},
		"X-Forwarded-For":   {"203.0.113.7"},
		"X-Forwarded-Host":  {"api.example.com"},
		"X-Forwarded-Proto": {"https"},
		"X-Request-Id":      {"0123456789abcdef"},
	}
	req = req.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(int, textproto.MIMEHeader) error { return nil },
	}))
	checkRequestHead(t, req)
	bw := bufio.NewWriterSize(nopWriter{}, 4096)
	if n := testing.AllocsPerRun(100, func() {
		if !writeRequestHead(bw, req) {
			t.Fatal("declined")
		}
		bw.Flush()
	}); n != 0 {
		t.Errorf("%v allocations per head", n)
	}
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// FuzzRequestHead builds requests from the fuzzer's strings and compares
// writeRequestHead with req.Write on them. The header is given as entries
// separated by \x1e, each a key and its values separated by \x1f.
func FuzzRequestHead(f *testing.F) {
	f.Add("GET", "", "example.com", "/", "", "", "", "Accept\x1f*/*", uint8(0))
	f.Add("POST", "virt:81", "[fe80::1%eth0]:80", "/a/b", "", "q=1", "", "X\x1fa\x1fb\x1ey\x1f c\r\nd ", uint8(1))
	f.Add("", "", "h", "", "", "", "", "User-Agent", uint8(2))
	f.Add("PUT", "bad host", "h", "/a b", "/a%20b", "", "", "User-Agent\x1f", uint8(4))
	f.Add("PATCH", "", "h", "/x", "", "", "//op/aque", "Trailer\x1fX\x1eContent-Length\x1f3", uint8(8))
	f.Add("DELETE", "", "[::1", "*", "", "a\x00b", "", "Host\x1fother\x1euser-agent\x1fx", uint8(16))
	f.Add("GET", "bücher.example", "h", "/%zz", "/%zz", "", "", "\x1f\x1ebad key\x1fv", uint8(3))
	f.Fuzz(func(t *testing.T, method, host, urlHost, path, rawPath, rawQuery, opaque, header string, flags uint8) {
		req := &http.Request{
			Method: method,
			Host:   host,
			URL: &url.URL{
				Scheme: "http", Host: urlHost, Path: path, RawPath: rawPath,
				RawQuery: rawQuery, Opaque: opaque, ForceQuery: flags&1 != 0,
			},
			Header: http.Header{},
		}
		if flags&2 != 0 {
			req.Header["User-Agent"] = nil
		}
		if flags&4 != 0 {
			req.Body = http.NoBody
		}
		if flags&8 != 0 {
			req.Header = nil
		}
		if flags&16 != 0 {
			req.Trailer = http.Header{"X": nil}
		}
		for e := range strings.SplitSeq(header, "\x1e") {
			if req.Header == nil {
				break
			}
			k, vals, _ := strings.Cut(e, "\x1f")
			if vals == "" {
				req.Header[k] = append(req.Header[k], []string{}...)
				continue
			}
			req.Header[k] = append(req.Header[k], strings.Split(vals, "\x1f")...)
		}
		checkRequestHead(t, req)
	})
}

// BenchmarkRequestHead is writeRequestHead on a proxied request with a
// typical header, against Request.Write on the same request.
func BenchmarkRequestHead(b *testing.B) {
	req, _ := http.NewRequest("GET", "http://10.0.0.7:8080/api/v1/items?limit=10", nil)
	req.Host = "api.example.com"
	req.Header = http.Header{
		"Accept":            {"application/json"},
		"Accept-Encoding":   {"gzip, br"},
		"Cookie":            {"a=b; c=d"},
		"User-Agent":        {"Mozilla/5.0"},
		"X-Forwarded-For":   {"203.0.113.7"},
		"X-Forwarded-Host":  {"api.example.com"},
		"X-Forwarded-Proto": {"https"},
		"X-Request-Id":      {"0123456789abcdef"},
	}
	bw := bufio.NewWriterSize(nopWriter{}, 4096)
	b.Run("writeRequestHead", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			writeRequestHead(bw, req)
			bw.Flush()
		}
	})
	b.Run("Request.Write", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req.Write(bw)
			bw.Flush()
		}
	})
}
