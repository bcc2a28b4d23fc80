package forward

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

// responseSeeds are heads, with what follows them, of the common case and
// of the ways out of it.
var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
	"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nshort",
	"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 404 Not\tFound \xff\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 599 X\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 600 X\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 199 X\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 +20 X\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1  200 OK\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200\tOK\r\nContent-Length: 1\r\n\r\nx",
	// Names and values.
	"HTTP/1.1 200 OK\r\ncontent-type: a\r\nX-MULTI-word: b\r\nx-multi-WORD: c\r\nx_y: d\r\n1-a: e\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX:\r\nY:   \r\nZ: \t v \t \r\nW:a:b\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX: caf\xc3\xa9 \xff\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX: a\x7fb\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX : a\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\n X: a\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\n: a\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX a\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX(: a\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r",
	"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
	"HTTP/1.1 200 OK\r\nContent-Le",
	"HTTP/1.1 200 OK\r",
	"HTTP/1.1 20",
	"",
	// Fields the Connection field names (RFC 9110 §7.6.1), which net/http
	// keeps when it says close and our reader drops.
	"HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nX-Other: 2\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nconnection: Close,x-secret\r\nx-secret: 1\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: X-Secret, X-Other\r\nX-Secret: 1\r\nX-Other: 2\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nConnection: close,\r\n X-Secret\r\nX-Secret: 1\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nConnection: close\r\nClose: 1\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"HTTP/1.1 204 No Content\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n\r\n",
	"HTTP/1.0 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 103 Early Hints\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\nConnection: close, X-Secret\nX-Secret: 1\nContent-Length: 3\n\nabc",
	// Content-Length.
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
	"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 003\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 3 \r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 0x3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nabc",
	// No length: the body runs to the end.
	"HTTP/1.1 200 OK\r\n\r\nto the end",
	"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end",
	"HTTP/1.1 500 OK\r\nX: y\r\n\r\n",
	// No body whatever the length.
	"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\n",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"x\"\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
	// Versions.
	"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/2.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.2 200 OK\r\nContent-Length: 3\r\n\r\nabc",
	"http/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
	// Connection.
	"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nConnection: CLOSE\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nconnection: Keep-Alive, Close \r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: ,close,\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nConnection: clo se\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nConnection: \tclose\t\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nConnection:\r\nContent-Length: 3\r\n\r\nabc",
	// Pragma.
	"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nCache-Control: max-age=1\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nPragma: x\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\npragma: No-Cache\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nPragma: no-cache \r\nContent-Length: 0\r\n\r\n",
	// Trailer without chunking stays in the header.
	"HTTP/1.1 200 OK\r\nTrailer: X\r\nContent-Length: 0\r\n\r\n",
}

// takenHeads must be parsed by parseResponseHead rather than left to
// http.ReadResponse: the common case it is there for.
var takenHeads = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\ncontent-type: a\r\nX-MULTI-word: b\r\nx-multi-WORD: c\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"x\"\r\n\r\n",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end",
	"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n",
	// More fields than parseResponseHead keeps on its stack.
	"HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: 1\r\nX-B: 2\r\nX-C: 3\r\n", 10) + "Content-Length: 2\r\n\r\nok",
}

func TestResponseHeadSeeds(t *testing.T) {
	for _, s := range responseSeeds {
		for _, m := range []uint8{0, 1, 2, 3} {
			checkResponseHead(t, []byte(s), m, 7, 0)
			checkResponseHead(t, []byte(s), m, 1, 2)
		}
	}
}

func TestResponseHeadTakesTheCommonCase(t *testing.T) {
	for _, s := range takenHeads {
		if !checkResponseHead(t, []byte(s), 0, 64, 0) {
			t.Errorf("left to http.ReadResponse: %q", s)
		}
	}
	// A response to HEAD has no body whatever its header says: that is
	// left to net/http.
	if checkResponseHead(t, []byte(takenHeads[0]), 1, 64, 0) {
		t.Errorf("took an answer to HEAD")
	}
}

// checkResponseHead compares, on data, parseResponseHead with
// http.ReadResponse for a request of the method m selects, reading the
// bodies chunk bytes at a time and closing them after closeAfter reads
// (never if 0). It reports whether parseResponseHead took the head.
func checkResponseHead(t *testing.T, data []byte, m, chunk, closeAfter uint8) bool {
	t.Helper()
	var req *http.Request
	switch m % 4 {
	case 0:
		req = &http.Request{Method: "GET"}
	case 1:
		req = &http.Request{Method: "HEAD"}
	case 2:
		req = &http.Request{Method: "POST"}
	}
	newReader := func() *bufio.Reader { return bufio.NewReaderSize(bytes.NewReader(data), 16<<10) }

	// readResponse as a whole returns what http.ReadResponse returns,
	// except that a closing final answer comes without the fields its
	// Connection field named (connection.go): they are taken out of want,
	// as connectionValues reads them from the head.
	tr := &tappedReader{r: bytes.NewReader(data)}
	br, wbr := bufio.NewReaderSize(tr, 16<<10), newReader()
	gres, gerr := readResponse(br, req, nil, &tr.tap)
	want, werr := http.ReadResponse(wbr, req)
	if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
		t.Fatalf("%q: readResponse: %v, http.ReadResponse: %v", data, gerr, werr)
	}
	if gerr != nil {
		return false
	}
	if end, _ := headEnd(data); lostConnection(want) && end <= 16<<10 {
		// A head past the buffer's first read and maxHeadCopy is not
		// searched.
		dropNamed(want.Header, connectionValues(data[:end]))
	}
	if !reflect.DeepEqual(gres.Header, want.Header) && (gres.Header != nil || len(want.Header) > 0) {
		t.Fatalf("%q: readResponse's header %v, want %v", data, gres.Header, want.Header)
	}

	br = newReader()
	br.Peek(1)
	p, _ := br.Peek(br.Buffered())
	res, n := parseResponseHead(p, br, req, nil)
	if res == nil {
		return false
	}
	br.Discard(n)
	got := res

	if got.Status != want.Status || got.StatusCode != want.StatusCode ||
		got.Proto != want.Proto || got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor ||
		got.ContentLength != want.ContentLength || got.Close != want.Close ||
		got.Uncompressed != want.Uncompressed || got.Request != want.Request ||
		!reflect.DeepEqual(got.TransferEncoding, want.TransferEncoding) ||
		!reflect.DeepEqual(got.Trailer, want.Trailer) ||
		!reflect.DeepEqual(got.Header, want.Header) {
		t.Fatalf("%q:\n got %+v\nwant %+v", data, got, want)
	}
	if (got.Body == http.NoBody) != (want.Body == http.NoBody) {
		t.Fatalf("%q: body %T, want %T", data, got.Body, want.Body)
	}
	// Parsed for the direct lane, the header map may be made only when
	// asked for: the same map.
	lbr := newReader()
	lbr.Peek(1)
	lp, _ := lbr.Peek(lbr.Buffered())
	lfr := &fastResponse{lazy: true}
	if lres, _ := parseResponseHead(lp, lbr, req, lfr); lres == nil || !reflect.DeepEqual(lfr.header(), want.Header) {
		t.Fatalf("%q: parsed for the lane, header %v, want %v", data, lfr.res.Header, want.Header)
	}

	buf, wbuf := make([]byte, max(int(chunk), 1)), make([]byte, max(int(chunk), 1))
	for reads := 1; ; reads++ {
		if closeAfter > 0 && reads > int(closeAfter) {
			gerr, werr := got.Body.Close(), want.Body.Close()
			if gerr != werr {
				t.Fatalf("%q: Close: %v, want %v", data, gerr, werr)
			}
			n, gerr := got.Body.Read(buf)
			wn, werr := want.Body.Read(wbuf)
			if n != wn || gerr != werr {
				t.Fatalf("%q: read after Close: %d %v, want %d %v", data, n, gerr, wn, werr)
			}
			break
		}
		n, gerr := got.Body.Read(buf)
		wn, werr := want.Body.Read(wbuf)
		if n != wn || gerr != werr || !bytes.Equal(buf[:n], wbuf[:wn]) {
			t.Fatalf("%q: read %d: %d %q %v, want %d %q %v", data, reads, n, buf[:n], gerr, wn, wbuf[:wn], werr)
		}
		if gerr != nil {
			// Once more: what a body says after its end.
			n, gerr := got.Body.Read(buf)
			wn, werr := want.Body.Read(wbuf)
			if n != wn || gerr != werr {
				t.Fatalf("%q: read after the end: %d %v, want %d %v", data, n, gerr, wn, werr)
			}
			break
		}
	}
	rest, _ := io.ReadAll(br)
	wrest, _ := io.ReadAll(wbr)
	if !bytes.Equal(rest, wrest) {
		t.Fatalf("%q: left after the body %q, want %q", data, rest, wrest)
	}
	return true
}

// FuzzResponseHead compares parseResponseHead with http.ReadResponse on
// arbitrary bytes: whatever it takes, ReadResponse must take too, and make
// the same response of it, with the same body and the same bytes left
// after it.
func FuzzResponseHead(f *testing.F) {
	for i, s := range responseSeeds {
		f.Add([]byte(s), uint8(i), uint8(i%9+1), uint8(i%3))
	}
	f.Fuzz(func(t *testing.T, data []byte, method, chunk, closeAfter uint8) {
		checkResponseHead(t, data, method, chunk, closeAfter)
	})
}

func TestResponseHeadAllocations(t *testing.T) {
	data := []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Thu, 26 Nov 2026 00:00:00 GMT\r\n" +
		"Content-Type: text/html; charset=utf-8\r\nContent-Length: 5\r\nConnection: keep-alive\r\n" +
		"Cache-Control: no-cache\r\nEtag: \"abc\"\r\nVary: Accept-Encoding\r\n\r\nhello")
	req := &http.Request{Method: "GET"}
	rd := bytes.NewReader(data)
	br := bufio.NewReaderSize(rd, 16<<10)
	count := func(read func(*bufio.Reader, *http.Request) (*http.Response, error)) float64 {
		return testing.AllocsPerRun(200, func() {
			rd.Reset(data)
			br.Reset(rd)
			if _, err := read(br, req); err != nil {
				t.Fatal(err)
			}
		})
	}
	ours, theirs := count(readAlone), count(http.ReadResponse)
	t.Logf("allocations per head: %v, http.ReadResponse: %v", ours, theirs)
	if ours > 4 {
		t.Errorf("%v allocations per head, want at most 4", ours)
	}
}

// TestClientFramesResponsesAsNetHTTP runs the client on answers of the
// framings the parser takes that the other tests do not send: a length on
// a 304, and a body that runs to the end of the connection.
func TestClientFramesResponsesAsNetHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					switch req.URL.Path {
					case "/304":
						io.WriteString(c, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nEtag: \"v\"\r\n\r\n")
					case "/eof":
						io.WriteString(c, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nto the end")
						return
					default:
						fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path)
					}
				}
			}()
		}
	}()
	tr := newTestTransport(t, Timeouts{})
	url := "http://" + ln.Addr().String()
	for _, tc := range []struct {
		path, body string
		code       int
	}{
		{"/a", "/a", 200}, {"/304", "", 304}, {"/b", "/b", 200}, {"/eof", "to the end", 200}, {"/c", "/c", 200},
	} {
		code, body, err := do(t, tr, "GET", url+tc.path, nil)
		if err != nil || code != tc.code || body != tc.body {
			t.Fatalf("%s: %d %q %v, want %d %q", tc.path, code, body, err, tc.code, tc.body)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: one up to the body read to its end, one after", n)
	}
}

// tappedReader is r with a headTap, as a pconn has.
type tappedReader struct {
	r   io.Reader
	tap headTap
}

func (t *tappedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if t.tap.on {
		t.tap.record(p[:n])
	}
	return n, err
}

// BenchmarkResponseHead is readResponse on a typical server's head,
// against http.ReadResponse.
func BenchmarkResponseHead(b *testing.B) {
	data := []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Thu, 26 Nov 2026 00:00:00 GMT\r\n" +
		"Content-Type: text/html; charset=utf-8\r\nContent-Length: 5\r\nConnection: keep-alive\r\n" +
		"Cache-Control: no-cache\r\nEtag: \"abc\"\r\nVary: Accept-Encoding\r\n\r\nhello")
	req := &http.Request{Method: "GET"}
	rd := bytes.NewReader(data)
	br := bufio.NewReaderSize(rd, 16<<10)
	for _, bc := range []struct {
		name string
		read func(*bufio.Reader, *http.Request) (*http.Response, error)
	}{{"readResponse", readAlone}, {"http.ReadResponse", http.ReadResponse}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(data)
				br.Reset(rd)
				if _, err := bc.read(br, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// readAlone is readResponse allocating the response itself.
func readAlone(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	return readResponse(br, req, nil, nil)
}
