package forward

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// closingAnswers are answers whose Connection field says close and names
// X-Secret, in the ways a server may write it; X-Other must stay.
var closingAnswers = []struct{ name, head, body string }{
	{"plain", "HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nContent-Length: 2\r\nX-Other: 2\r\nX-Secret: 1\r\n\r\n", "ok"},
	{"odd case", "HTTP/1.1 200 OK\r\nconnection: Close,x-secret\r\nContent-Length: 2\r\nX-Other: 2\r\nx-secret: 1\r\n\r\n", "ok"},
	{"two lines", "HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: X-Secret\r\nContent-Length: 2\r\nX-Other: 2\r\nX-Secret: 1\r\n\r\n", "ok"},
	{"folded", "HTTP/1.1 200 OK\r\nConnection: close,\r\n X-Secret\r\nContent-Length: 2\r\nX-Other: 2\r\nX-Secret: 1\r\n\r\n", "ok"},
	{"early hints", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nContent-Length: 2\r\nX-Other: 2\r\nX-Secret: 1\r\n\r\n", "ok"},
	{"chunked", "HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nTransfer-Encoding: chunked\r\nX-Other: 2\r\nX-Secret: 1\r\n\r\n", "2\r\nok\r\n0\r\n\r\n"},
	{"no body", "HTTP/1.1 204 No Content\r\nConnection: close, X-Secret\r\nX-Other: 2\r\nX-Secret: 1\r\n\r\n", ""},
	{"bare LF", "HTTP/1.1 200 OK\nConnection: close, X-Secret\nContent-Length: 2\nX-Other: 2\nX-Secret: 1\n\n", "ok"},
	{"many fields", "HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nContent-Length: 2\r\n" + strings.Repeat("X-Pad: v\r\n", 30) + "X-Other: 2\r\nX-Secret: 1\r\n\r\n", "ok"},
}

// checkAnswer fails t unless h, an answer to relay, lacks X-Secret and
// keeps X-Other.
func checkAnswer(t *testing.T, what string, h http.Header) {
	t.Helper()
	if v, ok := h["X-Secret"]; ok {
		t.Errorf("%s: X-Secret %q kept", what, v)
	}
	if h.Get("X-Other") != "2" {
		t.Errorf("%s: X-Other %q, want 2", what, h.Get("X-Other"))
	}
}

// Our client's reader drops what a closing answer's Connection field
// names, whether its parser takes the head or http.ReadResponse does
// (HEAD, chunked, 1xx), and whether the head is whole in the first read
// or comes a byte at a time.
func TestReadResponseDropsWhatAClosingConnectionNames(t *testing.T) {
	for _, a := range closingAnswers {
		for _, method := range []string{"GET", "HEAD"} {
			for _, drip := range []bool{false, true} {
				what := a.name + " " + method
				var r io.Reader = strings.NewReader(a.head + a.body)
				if drip {
					what += " a byte at a time"
					r = iotest.OneByteReader(r)
				}
				tr := &tappedReader{r: r}
				br := bufio.NewReaderSize(tr, 16<<10)
				req := &http.Request{Method: method}
				for _, lazy := range []bool{false, true} {
					if lazy {
						// Parsed for the direct lane: the header map is made
						// later, and the lane relays the lines.
						tr.r = strings.NewReader(a.head + a.body)
						br.Reset(tr)
					}
					fr := &fastResponse{lazy: lazy}
					var res *http.Response
					for {
						var err error
						if res, err = readResponse(br, req, fr, &tr.tap); err != nil {
							t.Fatalf("%s: %v", what, err)
						}
						if res.StatusCode >= 200 {
							break
						}
					}
					if !res.Close {
						t.Errorf("%s: the answer does not close its connection", what)
					}
					if res == &fr.res {
						checkAnswer(t, what+" (header made later)", fr.header())
						if fr.hasRaw {
							lines, _, _, _, _, ok := appendRawLines(nil, fr)
							if !ok || bytes.Contains(lines, []byte("X-Secret")) || !bytes.Contains(lines, []byte("X-Other: 2\r\n")) {
								t.Errorf("%s: the lane's lines %q (%v)", what, lines, ok)
							}
						}
					} else {
						checkAnswer(t, what, res.Header)
					}
				}
			}
		}
	}
}

// scriptConn is a connection whose reads return chunks, one per read,
// and whose writes go nowhere.
type scriptConn struct {
	net.Conn
	mu     sync.Mutex
	chunks []string
}

func (c *scriptConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	if c.chunks[0] = c.chunks[0][n:]; c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func (c *scriptConn) Write(p []byte) (int, error) { return len(p), nil }

func (c *scriptConn) answer(chunks ...string) {
	c.mu.Lock()
	c.chunks = append(c.chunks, chunks...)
	c.mu.Unlock()
}

// exchangeOn writes a request on hc, then reads reads times.
func exchangeOn(hc *headConn, first string, reads int) {
	io.WriteString(hc, first)
	buf := make([]byte, 64<<10)
	for range reads {
		hc.Read(buf)
	}
}

// A connection http.Transport dials keeps the final head of each answer,
// from the reads after the request, whatever the reads' sizes and the
// informational answers before it; not a head too long, not after a
// switch of protocols, not under TLS.
func TestHeadConnKeepsEachAnswersFinalHead(t *testing.T) {
	sc := &scriptConn{}
	hc := newHeadConn(sc)

	sc.answer("HTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\nHTTP/1.1 200 OK\r\nConn", "ection: close, X-Secret\r\nX-Secret: 1\r\n", "\r\nbody")
	exchangeOn(hc, "GET / HTTP/1.1\r\n\r\n", 3)
	if conn, ok := hc.connection(200); !ok || len(conn) != 1 || conn[0] != "close, X-Secret" {
		t.Errorf("answer in three reads: %q %v", conn, ok)
	}
	if _, ok := hc.connection(204); ok {
		t.Errorf("the head of a 200 taken for a 204's")
	}

	// The next exchange starts a new copy.
	sc.answer("HTTP/1.1 200 OK\r\nConnection: close, X-B\r\n\r\n")
	exchangeOn(hc, "GET /b HTTP/1.1\r\n\r\n", 1)
	if conn, ok := hc.connection(200); !ok || len(conn) != 1 || conn[0] != "close, X-B" {
		t.Errorf("second answer: %q %v", conn, ok)
	}

	// A head longer than the copy keeps is not searched.
	sc.answer("HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\n", "X-Pad: "+strings.Repeat("v", maxHeadCopy)+"\r\n\r\n")
	exchangeOn(hc, "GET /c HTTP/1.1\r\n\r\n", 2)
	if conn, ok := hc.connection(200); ok {
		t.Errorf("a head past the copy: %q", conn)
	}

	// After a switch of protocols, nothing is copied.
	sc.answer("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	exchangeOn(hc, "GET /d HTTP/1.1\r\n\r\n", 1)
	sc.answer("HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\n\r\n")
	exchangeOn(hc, "frame", 1)
	if conn, ok := hc.connection(200); ok {
		t.Errorf("bytes of a tunnel taken for a head: %q", conn)
	}

	// Under TLS the bytes are no head.
	sc = &scriptConn{}
	hc = newHeadConn(sc)
	sc.answer("HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\n\r\n")
	exchangeOn(hc, "\x16\x03\x01", 1)
	if conn, ok := hc.connection(200); ok {
		t.Errorf("TLS bytes taken for a head: %q", conn)
	}
}

// closingBackend answers each request with the answer its path names,
// its head alone to HEAD, and closes the connection after it.
func closingBackend(t *testing.T) string {
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
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				for _, a := range closingAnswers {
					if req.URL.Path == "/"+strings.ReplaceAll(a.name, " ", "-") {
						if req.Method == http.MethodHead {
							io.WriteString(c, a.head)
						} else {
							io.WriteString(c, a.head+a.body)
						}
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// Relayed, a closing answer lacks what its Connection field named, with
// our client (GET, HEAD) and through http.Transport (POST, and every
// request with the fast path off).
func TestRelayDropsWhatAClosingConnectionNames(t *testing.T) {
	be := closingBackend(t)
	for _, mode := range []struct {
		name string
		o    TransportOptions
	}{{"fast path", TransportOptions{}}, {"net/http only", TransportOptions{NetHTTPOnly: true}}} {
		t.Run(mode.name, func(t *testing.T) {
			rl := newRelay(t, func(u *Upstream) {
				tr := NewTransport(Timeouts{Connect: time.Second, ResponseHeader: 5 * time.Second}, mode.o)
				t.Cleanup(func() { CloseIdleConnections(tr) })
				u.Transport = tr
			}, be)
			for _, a := range closingAnswers {
				for _, method := range []string{"GET", "HEAD", "POST"} {
					raw := method + " /" + strings.ReplaceAll(a.name, " ", "-") + " HTTP/1.1\r\nHost: h\r\n"
					if method == "POST" {
						raw += "Content-Length: 1\r\n\r\nx"
					} else {
						raw += "\r\n"
					}
					what := a.name + " " + method
					res, body := sendRaw(t, rl.front.Listener.Addr().String(), method, raw)
					checkAnswer(t, what, res.Header)
					want := "ok"
					if method == "HEAD" || a.name == "no body" {
						want = ""
					}
					if body != want {
						t.Errorf("%s: body %q, want %q", what, body, want)
					}
				}
			}
		})
	}
}

// sendRaw sends raw, a request of method, on a new connection to addr and
// reads the final answer.
func sendRaw(t *testing.T, addr, method, raw string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	for err == nil && res.StatusCode < 200 {
		res, err = http.ReadResponse(br, &http.Request{Method: method})
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}
