package forward

import (
	"bufio"
	"bytes"
	"net/http"
	"reflect"
	"testing"

	"github.com/tbsphathuynh/proxy/internal/httpsyntax"
)

// rawHead is a RawRequest over a head as it was written.
type rawHead struct {
	method, target []byte
	fields         [][2][]byte
}

func (h *rawHead) Method() []byte                   { return h.method }
func (h *rawHead) Target() []byte                   { return h.target }
func (h *rawHead) Fields() int                      { return len(h.fields) }
func (h *rawHead) Field(i int) (name, value []byte) { return h.fields[i][0], h.fields[i][1] }

// splitHead splits a head into its request line's parts and its fields,
// values trimmed; ok is false for a head of any other shape (folded or
// bare-LF lines, a body after it), which h1 hands to net/http.
func splitHead(data []byte) (h *rawHead, ok bool) {
	head, rest, found := bytes.Cut(data, []byte("\r\n\r\n"))
	if !found || len(rest) != 0 {
		return nil, false
	}
	lines := bytes.Split(head, []byte("\r\n"))
	parts := bytes.Split(lines[0], []byte(" "))
	if len(parts) != 3 {
		return nil, false
	}
	h = &rawHead{method: parts[0], target: parts[1]}
	for _, l := range lines[1:] {
		name, value, found := bytes.Cut(l, []byte(":"))
		if !found || bytes.ContainsAny(l, "\r\n") || len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			return nil, false
		}
		h.fields = append(h.fields, [2][]byte{name, bytes.Trim(value, " \t")})
	}
	return h, true
}

// usualHead is the head the usual path sends for req, from the client at
// clientIP, as ServeHTTP builds and the client writes it.
func usualHead(t *testing.T, req *http.Request, clientIP, requestID string) []byte {
	t.Helper()
	req.RemoteAddr = clientIP + ":1234"
	ob := &outbound{}
	ob.req = *req
	out := &ob.req
	ob.url = *req.URL
	ob.url.RawQuery = cleanQuery(ob.url.RawQuery)
	out.URL = &ob.url
	out.Header = ob.outHeader(req, requestID, upgradeType(req.Header))
	out.Body = nil
	out.Close = false
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	if !writeRequestHead(bw, out) {
		t.Fatalf("the usual path writes no plain head for %+v", out)
	}
	bw.Flush()
	return b.Bytes()
}

func readHead(t *testing.T, head []byte) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		t.Fatalf("a server cannot read the head %q: %v", head, err)
	}
	return r
}

// FuzzDirectHead checks the direct lane against the usual path: for every
// head net/http's server accepts that the lane takes, a server reads the
// same request from the lane's head as from the usual path's (method,
// target, Host and every header value in order; only the spelling and
// order of the lines differ).
func FuzzDirectHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
		"GET /a/b.js?v=1&w=2 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n",
		"HEAD /x HTTP/1.1\r\nhost: h\r\nx-multi: a\r\nX-Multi: b\r\ncookie: a=1; b=2\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: h\r\nUser-Agent:\r\nX-Empty: \r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: h\r\nte: trailers\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\n\r\n",
		"GET /x;y?a;b HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /x?%zz HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /%41 HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: \r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n",
		"GET /x?y HTTP/1.1\r\nHost: h\r\nX-Request-Id: abc\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: h\r\nX-Request-Id: a\r\nx-request-id: b\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: h\r\nX-Request-Id: has space\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: h\r\nX-Request-Id:\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2, 10.0.0.3\r\nX-Forwarded-For:\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: h\r\nForwarded: for=1.2.3.4\r\nX-Forwarded-Host: evil\r\nx-forwarded-proto: https\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: a\r\nX-Forwarded-For: b\r\nX-Forwarded-For: c\r\nX-Forwarded-For: d\r\nX-Forwarded-For: e\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil || req.ContentLength != 0 || len(req.TransferEncoding) != 0 {
			return
		}
		raw, ok := splitHead(data)
		if !ok {
			return
		}
		const ip, id = "192.0.2.1", "0123456789abcdef0123456789abcdef"
		got, host, path, clientID, ok := DirectHead([]byte("kept"), raw, ip, id)
		if !ok {
			if string(got) != "kept" {
				t.Fatalf("declined, but left %q in the buffer", got)
			}
			return
		}
		if string(host) != req.Host || string(path) != req.URL.Path {
			t.Errorf("host %q and path %q, the request has %q and %q", host, path, req.Host, req.URL.Path)
		}
		// Track keeps a client's only request ID when it is valid.
		wantID := id
		if v := req.Header["X-Request-Id"]; len(v) == 1 && httpsyntax.RequestID(v[0]) {
			wantID = v[0]
		}
		if gotID := string(clientID); clientID == nil && wantID != id || clientID != nil && gotID != wantID {
			t.Errorf("client's request ID %q, Track keeps %q", clientID, wantID)
		}
		lane := readHead(t, bytes.TrimPrefix(got, []byte("kept")))
		usual := readHead(t, usualHead(t, req, ip, wantID))
		if lane.Method != usual.Method || lane.RequestURI != usual.RequestURI || lane.Host != usual.Host {
			t.Errorf("lane sends %s %s to %s, the usual path %s %s to %s",
				lane.Method, lane.RequestURI, lane.Host, usual.Method, usual.RequestURI, usual.Host)
		}
		if !reflect.DeepEqual(lane.Header, usual.Header) {
			t.Errorf("lane sends header\n%v\nthe usual path\n%v", lane.Header, usual.Header)
		}
	})
}
