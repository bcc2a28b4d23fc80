package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// A server's answer names, in its Connection field, fields that concern
// its own connection only: the proxy removes them (RFC 9110 §7.6.1), also
// when the field says close, which net/http's reader removes with the
// names it carries. Issue 16: `Connection: close, X-Secret` relayed
// X-Secret, on every path. nginx 1.22 and HAProxy 2.6 relay it too.
func TestFieldsTheServersConnectionNamesAreRemoved(t *testing.T) {
	const secret = "X-Secret: 1\r\n"
	// Each answer is a head and a body, which a HEAD does not get.
	answers := []struct{ path, head, body string }{
		{"/keep-alive", "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nContent-Length: 2\r\nX-Other: 2\r\n" + secret + "\r\n", "ok"},
		{"/close", "HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nContent-Length: 2\r\nX-Other: 2\r\n" + secret + "\r\n", "ok"},
		{"/odd", "HTTP/1.1 200 OK\r\nconnection: Close,x-secret\r\nContent-Length: 2\r\nX-Other: 2\r\nx-secret: 1\r\n\r\n", "ok"},
		{"/two-lines", "HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: X-Secret\r\nContent-Length: 2\r\nX-Other: 2\r\n" + secret + "\r\n", "ok"},
		{"/hints", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nContent-Length: 2\r\nX-Other: 2\r\n" + secret + "\r\n", "ok"},
		{"/chunked", "HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nTransfer-Encoding: chunked\r\nX-Other: 2\r\n" + secret + "\r\n", "2\r\nok\r\n0\r\n\r\n"},
		{"/no-body", "HTTP/1.1 204 No Content\r\nConnection: close, X-Secret\r\nX-Other: 2\r\n" + secret + "\r\n", ""},
		{"/to-end", "HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Other: 2\r\n" + secret + "\r\n", "ok"},
		{"/many", "HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nContent-Length: 2\r\n" + manyFields(20) + "X-Other: 2\r\n" + secret + "\r\n", "ok"},
		// close is a name like any other: a field named Close (reserved,
		// RFC 9110 §18.4) goes with it.
		{"/close-field", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\nX-Other: 2\r\nClose: x-secret\r\n\r\n", "ok"},
		{"/names-an-end-to-end-field", "HTTP/1.1 200 OK\r\nConnection: close, X-Other, X-Secret\r\nContent-Length: 2\r\nX-Other: 2\r\n" + secret + "\r\n", "ok"},
	}
	addr := closingBackend(t, func(req *http.Request) string {
		for _, a := range answers {
			if a.path == req.URL.Path {
				if req.Method == http.MethodHead {
					return a.head
				}
				return a.head + a.body
			}
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast"
	})
	type result struct{ method, path, bytes string }
	var first []result
	for _, lane := range lanes {
		t.Run(lane.name, func(t *testing.T) {
			p := startProxy(t, lane.yaml+"servers: [{url: \"http://"+addr+"\"}]\n")
			var got []result
			for _, method := range []string{"GET", "HEAD"} {
				for _, a := range answers {
					path := a.path
					// The case, then another request on the same client
					// connection: the server's close is about its own
					// connection, and the client's stays open as before.
					_, raw := exchange(t, p, method+" "+path+" HTTP/1.1\r\nHost: t\r\n\r\n"+lastGET)
					raw = variableLines.ReplaceAllString(raw, "")
					if strings.Contains(strings.ToLower(raw), "x-secret") {
						t.Errorf("%s %s: X-Secret relayed:\n%s", method, path, raw)
					}
					wantOther := path != "/names-an-end-to-end-field"
					if strings.Contains(raw, "X-Other: 2\r\n") != wantOther {
						t.Errorf("%s %s: X-Other relayed %v, want %v:\n%s", method, path, !wantOther, wantOther, raw)
					}
					if n := strings.Count(raw, "HTTP/1.1 "); n < 2 || !strings.HasSuffix(raw, "last") {
						t.Errorf("%s %s: the next request on the connection not answered:\n%s", method, path, raw)
					}
					got = append(got, result{method, path, raw})
				}
			}
			if first == nil {
				first = got
				return
			}
			for i, r := range got {
				if r != first[i] {
					t.Errorf("%s %s:\n%s\nwhere %s answered:\n%s", r.method, r.path, r.bytes, lanes[0].name, first[i].bytes)
				}
			}
		})
	}
}

// variableLines are the header lines that differ from one answer to the
// next.
var variableLines = regexp.MustCompile(`(?m)^(Date|X-Request-Id): [^\r\n]*\r\n`)

// closingBackend answers every request with the bytes of answer and
// closes its connection after an answer that says close, as a server
// does (and must, for an answer that runs to the end of the connection).
func closingBackend(t *testing.T, answer func(req *http.Request) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					a := answer(req)
					if _, err := io.WriteString(c, a); err != nil || strings.Contains(strings.ToLower(a), "close") {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// manyFields is n header lines of distinct names, more than the fast
// path's parser keeps in place.
func manyFields(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("X-F")
		b.WriteByte(byte('a' + i%26))
		b.WriteByte(byte('a' + i/26))
		b.WriteString(": v\r\n")
	}
	return b.String()
}
