package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

// A server that sends more than its answer's framing allows (a body after
// an answer to HEAD, or beyond its Content-Length), in a later segment,
// must never hand those bytes to the next client as its answer: the
// connection holding them is closed, the event counted and logged once.
// Issue: the next client got "smuggled!" and a Set-Cookie it never asked
// for.
func TestStrayBytesNeverReachTheNextClient(t *testing.T) {
	for _, mode := range []struct{ name, yaml string }{
		{"fast path", fastPathOn},
		{"fast path off", "client: {fast_path: false}\n"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			if mode.name == "fast path off" {
				// http.Transport watches an idle connection from its
				// reader goroutine, which may wake to the stray bytes only
				// after the next request has claimed the connection: then
				// they are that request's answer. This test sends the
				// next request at once, and fails there about one run in
				// two (docs/security.md).
				t.Skip("http.Transport's window between stray bytes and its reader noticing them (docs/security.md)")
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			stray := make(chan struct{})
			wrote := make(chan struct{})
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
							switch req.URL.Path {
							case "/head":
								// do_HEAD = do_GET: the head, then the body
								// in another write.
								io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 86\r\n\r\n")
							case "/long":
								io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
							default:
								body := "victim"
								if req.Method == "HEAD" {
									body = ""
								}
								io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Real: yes\r\n\r\n"+body)
								continue
							}
							<-stray
							io.WriteString(c, "HTTP/1.1 200 OK\r\nSet-Cookie: session=attacker\r\nContent-Length: 10\r\n\r\nsmuggled!\n")
							wrote <- struct{}{}
						}
					}()
				}
			}()
			var log logBuffer
			p := startProxyLogging(t, mode.yaml+`admin: {listen: "127.0.0.1:0"}
servers: [{url: "http://`+ln.Addr().String()+`", name: be}]
`, &log)
			c := &http.Client{}
			base := "http://" + p.Addr()
			for i, first := range []string{"HEAD /head", "GET /long", "HEAD /head"} {
				method, path, _ := strings.Cut(first, " ")
				req, _ := http.NewRequest(method, base+path, nil)
				res, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				stray <- struct{}{}
				<-wrote
				for _, next := range []string{"GET", "HEAD", "OPTIONS", "DELETE"} {
					req, _ := http.NewRequest(next, base+"/victim", nil)
					res, err := c.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					body, _ := io.ReadAll(res.Body)
					res.Body.Close()
					if res.Header.Get("Set-Cookie") != "" || res.Header.Get("X-Real") != "yes" {
						t.Fatalf("round %d, %s after %s: the client got another's answer: %v %q", i, next, first, res.Header, body)
					}
					if next == "GET" && string(body) != "victim" {
						t.Fatalf("round %d: body %q", i, body)
					}
				}
			}
			mfs := scrape(t, p.AdminAddr())
			if n, _ := value(mfs, "proxy_upstream_protocol_errors_total", map[string]string{"upstream": "default", "server": "be"}); n != 3 {
				t.Errorf("proxy_upstream_protocol_errors_total = %v, want 3", n)
			}
			if n := strings.Count(log.String(), "server broke HTTP framing"); n != 1 {
				t.Errorf("%d warnings in the log, want 1 (once per server per minute):\n%s", n, log.String())
			}
			if !strings.Contains(log.String(), fmt.Sprintf(`"server":%q`, "be")) {
				t.Errorf("the warning does not name the server:\n%s", log.String())
			}
		})
	}
}

// What net/http's Transport notices by itself reaches the proxy's log as
// one structured WARN record, not a bare line on stderr.
func TestStdLogWriterMakesOneRecordPerLine(t *testing.T) {
	var buf logBuffer
	w := StdLogWriter(slog.New(slog.NewJSONHandler(&buf, nil)))
	fmt.Fprintf(w, "Unsolicited response received on idle HTTP channel starting with %q; err=<nil>\n", "HTTP/1.1 200 OK")
	var rec map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &rec); err != nil {
		t.Fatalf("not one JSON record: %v\n%s", err, buf.String())
	}
	if rec["level"] != "WARN" || !strings.HasPrefix(rec["msg"].(string), "Unsolicited response") || strings.HasSuffix(rec["msg"].(string), "\n") {
		t.Errorf("record %v", rec)
	}
}
