package forward

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
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
