package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
)

// rawBackend answers every request with the bytes of answer, as a broken
// or hostile server would, and counts the connections it accepted.
func rawBackend(t *testing.T, answer func(req *http.Request) string) string {
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
					io.Copy(io.Discard, req.Body)
					if _, err := io.WriteString(c, answer(req)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// lanes are the ways a plain request can take through the proxy, which
// must all give the same answer.
var lanes = []struct{ name, yaml string }{
	{"direct lane", ""},
	{"usual path", "client: {direct_lane: false}\n"},
	{"fast path off", "client: {fast_path: false}\n"},
}

// A server's answer whose header is malformed in a way that changes its
// framing is refused, never relayed with a framing of the proxy's guess.
func TestServersBrokenFramingIsRefused(t *testing.T) {
	addr := rawBackend(t, func(req *http.Request) string {
		switch req.URL.Path {
		case "/space-before-colon":
			// RFC 9112 §5.1: no white space between name and colon; a
			// server MUST reject such a message, a proxy MUST remove the
			// space or reject it. Framed by Content-Length instead of
			// chunked, the rest would become the next answer.
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	})
	for _, lane := range lanes {
		t.Run(lane.name, func(t *testing.T) {
			p := startProxy(t, lane.yaml+"servers: [{url: \"http://"+addr+"\"}]\n")
			c := &http.Client{}
			res, err := c.Get("http://" + p.Addr() + "/space-before-colon")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusBadGateway {
				t.Errorf("space before the colon: %d %q, want 502", res.StatusCode, b)
			}
			// The proxy keeps serving on the same client connection.
			if code, body, _ := get(t, c, "http://"+p.Addr()+"/"); code != 200 || body != "ok" {
				t.Errorf("after: %d %q", code, body)
			}
		})
	}
}
