package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// seeds are heads the fast path must take or leave exactly as net/http
// would: the usual requests, and the classic smuggling and parsing traps.
var seeds = []string{
	"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
	"GET /a/b.html?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
	"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\nabcdefg",
	"GET /%7Euser/a%2Fb HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET //double/slash HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /q? HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /a!$&'()*+,;=:@ HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /a$&+,;=:@b/c.d_e~f-g?q=1 HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\nhost: h\r\nx-lower-case: v\r\nX-UPPER: V\r\nx-Mixed-cASE: v\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\nx: b\r\nX:\tc \t\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\nCache-Control: max-age=0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nEmpty:\r\nSpaces:   \r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nObs: caf\xc3\xa9\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
	// Left to net/http:
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n folded\r\n\r\n",
	"GET / HTTP/1.1\nHost: h\n\n",
	"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
	"GET / HTTP/1.0\r\nHost: h\r\n\r\n",
	"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
	"GET http://example.com/ HTTP/1.1\r\nHost: h\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
	"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"GET / HTTP/1.1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
	"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
	"GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n",
	"G@T / HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nBad\x00: v\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\n: novalue\r\n\r\n",
	"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\n",
	"GET / HTT",
}

func FuzzParseHead(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > readBufferSize {
			data = data[:readBufferSize]
		}
		buf := append([]byte(nil), data...)
		st := &reqState{header: make(http.Header)}
		n, v := parseHead(buf, &st.head)
		if v != accept {
			return
		}
		if !st.build(buf[:n], &http.Request{}) {
			return
		}
		ours := &st.req
		ours.ContentLength = st.head.contentLength
		ours.Close = st.head.close

		br := bufio.NewReader(bytes.NewReader(data))
		want, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("accepted a head net/http rejects (%v):\n%q", err, data)
		}
		// The checks net/http's server adds to ReadRequest (which itself
		// refuses two Hosts and takes Host out of the header).
		if want.Host == "" || !httpguts.ValidHostHeader(want.Host) {
			t.Fatalf("accepted Host %q that net/http's server rejects:\n%q", want.Host, data)
		}
		for k, vv := range want.Header {
			if !httpguts.ValidHeaderFieldName(k) {
				t.Fatalf("accepted field name %q:\n%q", k, data)
			}
			for _, v := range vv {
				if !httpguts.ValidHeaderFieldValue(v) {
					t.Fatalf("accepted field value %q:\n%q", v, data)
				}
			}
		}

		if ours.Method != want.Method || ours.RequestURI != want.RequestURI || ours.Proto != want.Proto ||
			ours.ProtoMajor != want.ProtoMajor || ours.ProtoMinor != want.ProtoMinor || ours.Host != want.Host {
			t.Fatalf("request line differs:\nours %s %q %s host %q\nwant %s %q %s host %q",
				ours.Method, ours.RequestURI, ours.Proto, ours.Host, want.Method, want.RequestURI, want.Proto, want.Host)
		}
		if !reflect.DeepEqual(*ours.URL, *want.URL) {
			t.Fatalf("URL differs:\nours %#v\nwant %#v", *ours.URL, *want.URL)
		}
		if !reflect.DeepEqual(ours.Header, want.Header) {
			t.Fatalf("header differs:\nours %q\nwant %q", ours.Header, want.Header)
		}
		if ours.ContentLength != want.ContentLength || ours.Close != want.Close || len(want.TransferEncoding) > 0 {
			t.Fatalf("framing differs: ours length %d close %v; want length %d close %v te %q",
				ours.ContentLength, ours.Close, want.ContentLength, want.Close, want.TransferEncoding)
		}
		// The body and what follows it must be the same bytes both ways.
		rest := data[n:]
		wantBody, err := io.ReadAll(want.Body)
		if int64(len(rest)) < ours.ContentLength {
			if err == nil {
				t.Fatalf("net/http read a whole body of %d from %d bytes", ours.ContentLength, len(rest))
			}
			return
		}
		if err != nil || !bytes.Equal(wantBody, rest[:ours.ContentLength]) {
			t.Fatalf("body differs: net/http read %q (%v), ours %q", wantBody, err, rest[:ours.ContentLength])
		}
		after, _ := io.ReadAll(br)
		if !bytes.Equal(after, rest[ours.ContentLength:]) {
			t.Fatalf("bytes after the body differ: net/http %q, ours %q", after, rest[ours.ContentLength:])
		}
	})
}

// TestSeedsTakenOrLeft pins which seeds the fast path serves itself, so a
// change that quietly sends everything to net/http (or takes a trap) shows.
func TestSeedsTakenOrLeft(t *testing.T) {
	taken := 0
	for _, s := range seeds {
		var h head
		_, v := parseHead([]byte(s), &h)
		trap := strings.Contains(s, "Transfer-Encoding") || strings.Contains(s, " folded") ||
			strings.Contains(s, "HTTP/1.1\nHost") || strings.Contains(s, "Content-Length: 5\r\nContent-Length")
		if trap && v == accept {
			t.Errorf("fast path took %q", s)
		}
		if v == accept {
			taken++
		}
	}
	if taken < 17 {
		t.Errorf("fast path took %d of the seeds, want the first 17 at least", taken)
	}
}

func TestCanonicalize(t *testing.T) {
	for _, k := range []string{"host", "CONTENT-LENGTH", "x-forwarded-for", "a-b-c", "x--y", "-x", "x_y-z", "1a-2b", "WWW-Authenticate"} {
		b := []byte(k)
		canonicalize(b)
		if got, want := string(b), http.CanonicalHeaderKey(k); got != want {
			t.Errorf("canonicalize(%q) = %q, want %q", k, got, want)
		}
	}
}
