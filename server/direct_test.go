package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/internal/rawhttp"
)

// headBackend is a raw HTTP/1.1 server that sends every request head it
// reads, byte for byte, to heads, and answers each with res.
func headBackend(t *testing.T, res string) (addr string, heads <-chan string) {
	return rawhttp.Record(t, res)
}

func nextHead(t *testing.T, heads <-chan string) string {
	t.Helper()
	select {
	case h := <-heads:
		return h
	case <-time.After(5 * time.Second):
		t.Fatal("no request reached the backend")
		return ""
	}
}

// rawExchange sends req on c and reads the answer.
func rawExchange(t *testing.T, c net.Conn, br *bufio.Reader, req string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(req, " ")
	return rawhttp.ReadAnswer(t, br, method)
}

const directAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n" +
	"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-End: 1\r\n\r\nok"

var requestIDLine = regexp.MustCompile(`X-Request-Id: ([0-9a-f]{32})\r\n`)

// A plain GET goes to the server head to head: the client's lines as it
// wrote them, then the proxy's forwarding headers and request ID, which
// also comes back to the client; the answer loses its hop-by-hop headers
// as on the usual path. A request the lane leaves (here for its
// Connection header) goes the usual way on the same connection, its
// header rebuilt in net/http's canonical form.
func TestDirectLaneForwardsTheHeadAsItCame(t *testing.T) {
	addr, heads := headBackend(t, directAnswer)
	p := startProxy(t, fastPathOn+"servers: [{url: 'http://"+addr+"'}]\n")
	c, br := dialProxy(t, p)

	res, body := rawExchange(t, c, br, "GET /p/a.js?q=1&r=2 HTTP/1.1\r\nHost: example.com\r\nx-custom: a\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n")
	head := nextHead(t, heads)
	m := requestIDLine.FindStringSubmatch(head)
	if m == nil {
		t.Fatalf("no request ID sent on:\n%s", head)
	}
	want := "GET /p/a.js?q=1&r=2 HTTP/1.1\r\nHost: example.com\r\nx-custom: a\r\nUser-Agent: t\r\nAccept: */*\r\n" +
		"X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Host: example.com\r\nX-Forwarded-Proto: http\r\n" +
		"X-Request-Id: " + m[1] + "\r\n\r\n"
	if head != want {
		t.Errorf("server got:\n%q\nwant:\n%q", head, want)
	}
	if body != "ok" || res.Header.Get("X-End") != "1" || res.Header.Get("X-Request-Id") != m[1] || res.Header.Get("Date") == "" {
		t.Errorf("client got %q with %v", body, res.Header)
	}
	for _, hop := range []string{"X-Hop", "Keep-Alive", "Connection"} {
		if v, ok := res.Header[hop]; ok {
			t.Errorf("hop-by-hop %s: %q relayed", hop, v)
		}
	}

	_, body = rawExchange(t, c, br, "GET /p HTTP/1.1\r\nHost: example.com\r\nx-custom: b\r\nConnection: keep-alive\r\n\r\n")
	head = nextHead(t, heads)
	if body != "ok" || !strings.Contains(head, "\r\nX-Custom: b\r\n") || strings.Contains(head, "Connection") {
		t.Errorf("the usual path sent:\n%s", head)
	}
}

// The lane keeps out of the way of whatever needs the request as the
// handler chain has it (a rate limit keyed by a header, a balancer hashing
// a header, a fallback) and when turned off. Those requests reach the server
// with their header rebuilt (X-Custom, canonical), not as the client
// spelled it.
func TestDirectLaneOnlyWhereNothingNeedsTheRequest(t *testing.T) {
	addr, heads := headBackend(t, directAnswer)
	srv := "servers: [{url: 'http://" + addr + "'}]\n"
	cases := map[string]string{
		"turned off":                srv + "client: {direct_lane: false}\n",
		"rate limit by header":      srv + "rate_limit: {requests_per_second: 1000, burst: 1000, key: 'header:X-Api-Key'}\n",
		"rate limit behind proxies": srv + "rate_limit: {requests_per_second: 1000, burst: 1000, trusted_proxies: [10.0.0.0/8]}\n",
		"hash on a header":          srv + "load_balancing: {strategy: consistent_hash, hash_key: 'header:X-User'}\n",
		"fallback": fmt.Sprintf(`upstreams: {api: {servers: [{url: 'http://%s'}], health_checks: {enabled: false}}}
routes: [{match: {path_prefix: /p}, upstream: api, fallback: {status: 503, body: down}}]
`, addr),
	}
	get := func(t *testing.T, p *Server) string {
		t.Helper()
		c, br := dialProxy(t, p)
		if _, body := rawExchange(t, c, br, "GET /p/x HTTP/1.1\r\nHost: h\r\nx-custom: a\r\n\r\n"); body != "ok" {
			t.Errorf("answer %q", body)
		}
		return nextHead(t, heads)
	}
	for name, yaml := range cases {
		t.Run(name, func(t *testing.T) {
			if head := get(t, startProxy(t, yaml)); !strings.Contains(head, "\r\nX-Custom: a\r\n") {
				t.Errorf("not the usual path:\n%s", head)
			}
		})
	}
	t.Run("lane", func(t *testing.T) {
		if head := get(t, startProxy(t, fastPathOn+srv)); !strings.Contains(head, "\r\nx-custom: a\r\n") {
			t.Errorf("not the lane:\n%s", head)
		}
	})
}

// fastPathOn is the config of tests of the fast path's own workings,
// which hold whatever PROXY_FAST_PATH says.
const fastPathOn = "client: {fast_path: true}\n"

// bothPaths runs f on the direct lane and on the usual path; extra is the
// config f adds for it.
func bothPaths(t *testing.T, f func(t *testing.T, extra string)) {
	t.Run("lane", func(t *testing.T) { f(t, fastPathOn) })
	t.Run("usual path", func(t *testing.T) { f(t, "client: {direct_lane: false}\n") })
}

// Early hints, HEAD, bodies of unknown length and answers without a body
// reach the client the same way on the lane as on the usual path.
func TestDirectLaneRelaysAsTheUsualPath(t *testing.T) {
	be := backend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hints":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			io.WriteString(w, "final")
		case "/stream":
			for i := range 3 {
				fmt.Fprintf(w, "part%d.", i)
				w.(http.Flusher).Flush()
			}
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Content-Length", "6")
			io.WriteString(w, "abcdef")
		}
	})
	bothPaths(t, func(t *testing.T, extra string) {
		p := startProxy(t, extra+"servers:\n"+servers(be))
		base := "http://" + p.Addr()

		var hints []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, fmt.Sprint(code, " ", h.Get("Link")))
			return nil
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", base+"/hints", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(body) != "final" || len(hints) != 1 || hints[0] != "103 </a.css>; rel=preload" || res.Header.Get("Link") != "" {
			t.Errorf("hints: body %q, 1xx %q, final Link %q", body, hints, res.Header.Get("Link"))
		}

		res, err = http.Head(base + "/")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || res.ContentLength != 6 {
			t.Errorf("HEAD: %d, length %d", res.StatusCode, res.ContentLength)
		}

		status, body2, h := get(t, http.DefaultClient, base+"/stream")
		if status != 200 || body2 != "part0.part1.part2." || h.Get("X-Request-Id") == "" {
			t.Errorf("stream: %d %q %v", status, body2, h)
		}
		if status, body2, _ = get(t, http.DefaultClient, base+"/empty"); status != 204 || body2 != "" {
			t.Errorf("empty: %d %q", status, body2)
		}
	})
}

// The lane relays a server's answer as it came, lines and all, where the
// usual path copies it through header maps: the client must not tell the
// difference in what it reads, for any answer.
func TestDirectLaneRelaysAnswersAsTheUsualPath(t *testing.T) {
	answers := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/x\r\nX-A: 1\r\nx-a: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n<html></html>",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nPragma: no-cache\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Encoding: gzip\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: x-opt, keep-alive\r\nX-Opt: 1\r\nKeep-Alive: timeout=1\r\nProxy-Authenticate: x\r\nX-Kept: 1\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nto the end",
		"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nX-Request-Id: from-server\r\n\r\nnope",
		"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 5\r\n\r\n",
		"HTTP/1.1 299 Odd\r\nContent-Length: 1\r\nContent-Type:text/plain  \r\nX-Empty:\r\n\r\nx",
		// A close drops the server's Connection before the usual path's
		// relay looks at it, and with it what it names.
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close, X-Opt\r\nX-Opt: 1\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Opt\r\nConnection: close\r\nX-Opt: 1\r\n\r\nok",
		// An empty type is a type: nothing is sniffed.
		"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Type:\r\n\r\n<html>",
		// More Connection lines than the lane's relay follows: it hands
		// the answer to the usual relay, which needs the header map.
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: a\r\nConnection: b\r\nConnection: c\r\nConnection: d\r\nConnection: e\r\nA: 1\r\nE: 5\r\nF: 6\r\n\r\nok",
		"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Type: text/plain\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n",
	}
	type seen struct {
		status      int
		header      http.Header
		length      int64
		te          []string
		close       bool
		body        string
		generatedID bool
	}
	read := func(t *testing.T, extra, answer string) seen {
		t.Helper()
		addr, heads := headBackend(t, answer)
		p := startProxy(t, extra+"servers: [{url: 'http://"+addr+"'}]\n")
		c, br := dialProxy(t, p)
		res, body := rawExchange(t, c, br, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
		head := nextHead(t, heads)
		h := res.Header.Clone()
		// The request ID is new each time, and so is the Date the proxy
		// adds for a server that sent none.
		var ids []string
		for _, id := range h.Values("X-Request-Id") {
			if !strings.Contains(head, "X-Request-Id: "+id+"\r\n") {
				ids = append(ids, id)
			}
		}
		generated := len(ids) < len(h.Values("X-Request-Id"))
		h["X-Request-Id"] = ids
		if len(ids) == 0 {
			delete(h, "X-Request-Id")
		}
		if !strings.Contains(answer, "Date:") {
			h.Del("Date")
		}
		return seen{res.StatusCode, h, res.ContentLength, res.TransferEncoding, res.Close, body, generated}
	}
	for i, answer := range answers {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			lane := read(t, "", answer)
			usual := read(t, "client: {direct_lane: false}\n", answer)
			if !reflect.DeepEqual(lane, usual) {
				t.Errorf("for %q\nthe lane gave  %+v\nthe usual path %+v", answer, lane, usual)
			}
			if !lane.generatedID {
				t.Errorf("no request ID of the proxy's: %v", lane.header)
			}
		})
	}
}

// A request of the lane is logged as any other: the same fields, its
// request ID the one the client got back.
func TestDirectLaneLogs(t *testing.T) {
	addr, heads := headBackend(t, directAnswer)
	logFile := filepath.Join(t.TempDir(), "access.log")
	p := startProxy(t, fastPathOn+"servers: [{url: 'http://"+addr+"', name: be}]\nlogging: {access_log: '"+logFile+"', format: json}\n")
	c, br := dialProxy(t, p)
	res, _ := rawExchange(t, c, br, "GET /logged/x?q=1 HTTP/1.1\r\nHost: example.com\r\nx-custom: a\r\n\r\n")
	if head := nextHead(t, heads); !strings.Contains(head, "\r\nx-custom: a\r\n") {
		t.Fatalf("not the lane:\n%s", head)
	}
	id := res.Header.Get("X-Request-Id")
	var line string
	waitFor(t, "the access log line", func() bool {
		b, _ := os.ReadFile(logFile)
		line = string(b)
		return strings.Contains(line, id)
	})
	for _, want := range []string{`"method":"GET"`, `"host":"example.com"`, `"path":"/logged/x"`, `"status":200`,
		`"bytes":2`, `"route":"default"`, `"upstream":"default"`, `"server":"be"`, `"request_id":"` + id + `"`, `"remote":"127.0.0.1:`} {
		if !strings.Contains(line, want) {
			t.Errorf("log line lacks %s:\n%s", want, line)
		}
	}
}

// A rate limit keyed by the client's address holds on the lane as on the
// usual path: the same statuses, RateLimit headers and 429.
func TestDirectLaneRateLimits(t *testing.T) {
	bothPaths(t, func(t *testing.T, extra string) {
		addr, heads := headBackend(t, directAnswer)
		p := startProxy(t, extra+"servers: [{url: 'http://"+addr+"'}]\nrate_limit: {requests_per_second: 0.01, burst: 2}\n")
		c, br := dialProxy(t, p)
		var got []string
		for range 3 {
			res, body := rawExchange(t, c, br, "GET /x HTTP/1.1\r\nHost: h\r\nx-custom: a\r\n\r\n")
			got = append(got, fmt.Sprint(res.StatusCode, " limit=", res.Header.Get("RateLimit-Limit"),
				" remaining=", res.Header.Get("RateLimit-Remaining"), " retry=", res.Header.Get("Retry-After") != "", " ", strings.TrimSpace(body)))
		}
		want := []string{"200 limit=2 remaining=1 retry=false ok", "200 limit=2 remaining=0 retry=false ok",
			"429 limit=2 remaining=0 retry=true 429 Too Many Requests: rate limit exceeded, retry later"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("answers\n%q\nwant\n%q", got, want)
		}
		for range 2 {
			head := nextHead(t, heads)
			checkLane(t, head, extra == fastPathOn)
		}
	})
}

// A route's stripped prefix leaves the lane's head as it leaves the usual
// path's request line.
func TestDirectLaneStripsPrefixes(t *testing.T) {
	targets := []string{"/p", "/p/", "/p/x", "/p/x/y.js?q=1&r=2", "/p?", "/p?q", "/p/?q=1"}
	lines := map[string][]string{}
	bothPaths(t, func(t *testing.T, extra string) {
		addr, heads := headBackend(t, directAnswer)
		p := startProxy(t, extra+fmt.Sprintf(`upstreams: {api: {servers: [{url: 'http://%s'}], health_checks: {enabled: false}}}
routes: [{match: {path_prefix: /p}, upstream: api, strip_prefix: true}]
`, addr))
		c, br := dialProxy(t, p)
		for _, target := range targets {
			if _, body := rawExchange(t, c, br, "GET "+target+" HTTP/1.1\r\nHost: h\r\nx-custom: a\r\n\r\n"); body != "ok" {
				t.Fatalf("%s: answer %q", target, body)
			}
			head := nextHead(t, heads)
			checkLane(t, head, extra == fastPathOn)
			line, _, _ := strings.Cut(head, "\r\n")
			lines[extra] = append(lines[extra], line)
		}
	})
	if lane, usual := lines[fastPathOn], lines["client: {direct_lane: false}\n"]; !reflect.DeepEqual(lane, usual) || len(lane) != len(targets) {
		t.Errorf("request lines on the lane\n%q\non the usual path\n%q", lane, usual)
	}
}

// Forwarding headers from proxies in front: the chain is appended to and
// the rest replaced, on the lane as on the usual path.
func TestDirectLaneForwardingHeaders(t *testing.T) {
	got := map[string]http.Header{}
	bothPaths(t, func(t *testing.T, extra string) {
		addr, heads := headBackend(t, directAnswer)
		p := startProxy(t, extra+"servers: [{url: 'http://"+addr+"'}]\n")
		c, br := dialProxy(t, p)
		rawExchange(t, c, br, "GET /x HTTP/1.1\r\nHost: h\r\nx-custom: a\r\nX-Forwarded-For: 10.0.0.1\r\n"+
			"x-forwarded-for: 10.0.0.2, 10.0.0.3\r\nX-Forwarded-Proto: https\r\nForwarded: for=1.2.3.4\r\nX-Forwarded-Host: evil\r\n\r\n")
		head := nextHead(t, heads)
		checkLane(t, head, extra == fastPathOn)
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Del("X-Request-Id")
		got[extra] = r.Header
	})
	lane, usual := got[fastPathOn], got["client: {direct_lane: false}\n"]
	if !reflect.DeepEqual(lane, usual) {
		t.Errorf("on the lane\n%v\non the usual path\n%v", lane, usual)
	}
	if v := lane.Values("X-Forwarded-For"); len(v) != 1 || v[0] != "10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", v)
	}
	if lane.Get("X-Forwarded-Proto") != "http" || lane.Get("X-Forwarded-Host") != "h" || lane.Get("Forwarded") != "" {
		t.Errorf("forwarding headers %v", lane)
	}
}

// A client's own valid request ID is kept, on the lane as on the usual
// path: the server gets it and the client gets it back; two IDs, or an
// odd one, are replaced.
func TestDirectLaneKeepsTheClientsRequestID(t *testing.T) {
	bothPaths(t, func(t *testing.T, extra string) {
		addr, heads := headBackend(t, directAnswer)
		p := startProxy(t, extra+"servers: [{url: 'http://"+addr+"'}]\n")
		c, br := dialProxy(t, p)
		for _, tc := range []struct{ ids, want string }{
			{"X-Request-Id: client-1\r\n", "client-1"},
			{"x-request-id: a\r\nX-Request-Id: b\r\n", ""},
			{"X-Request-Id: has space\r\n", ""},
		} {
			res, _ := rawExchange(t, c, br, "GET /x HTTP/1.1\r\nHost: h\r\nx-custom: a\r\n"+tc.ids+"\r\n")
			head := nextHead(t, heads)
			checkLane(t, head, extra == fastPathOn)
			id := res.Header.Get("X-Request-Id")
			if tc.want != "" && id != tc.want || tc.want == "" && (len(id) != 32 || strings.Contains(tc.ids, id)) {
				t.Errorf("%q: the client got back ID %q", tc.ids, id)
			}
			if strings.Count(head, "X-Request-Id: ") != 1 || !strings.Contains(head, "\r\nX-Request-Id: "+id+"\r\n") {
				t.Errorf("%q: the server got\n%s\nwant the one ID %q", tc.ids, head, id)
			}
		}
	})
}

// dialProxy opens a raw client connection to p, closed when the test ends.
func dialProxy(t *testing.T, p *Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// checkLane reports whether a request head a server got came by the lane,
// as want says it should: the lane keeps the client's lower-case
// x-custom, the usual path canonicalizes it.
func checkLane(t *testing.T, head string, want bool) {
	t.Helper()
	if lane := strings.Contains(head, "\r\nx-custom: a\r\n"); lane != want {
		t.Errorf("served by the lane: %v, want %v:\n%s", lane, want, head)
	}
}

// The handler chain's middleware and what the lane does in its place
// (docs/performance.md, "The direct lane"): Recover is the lane's own
// deferred recover; CloseChunked has nothing to do, the lane takes no
// body; Track is accesslog.Begin and End (TestDirectLaneLogs,
// TestDirectLaneKeepsTheClientsRequestID); tracing turns the lane off.
// RefuseMalformed's refusals are the lane's too: each request below gets
// the same answer and the same close, and no server sees it.
func TestDirectLaneRefusesAsTheChain(t *testing.T) {
	cases := []struct{ name, req, status string }{
		{"empty host", "GET /x HTTP/1.1\r\nHost: \r\nx-custom: a\r\n\r\n", "400"},
		{"connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nx-custom: a\r\n\r\n", "405"},
	}
	bothPaths(t, func(t *testing.T, extra string) {
		addr, heads := headBackend(t, directAnswer)
		p := startProxy(t, extra+"servers: [{url: 'http://"+addr+"'}]\n")
		for _, tc := range cases {
			c, br := dialProxy(t, p)
			res, _ := rawExchange(t, c, br, tc.req)
			if got := strconv.Itoa(res.StatusCode); got != tc.status || !res.Close {
				t.Errorf("%s: %s (close %v), want %s and a close", tc.name, got, res.Close, tc.status)
			}
		}
		// One request the lane serves shows the backend saw nothing before.
		c, br := dialProxy(t, p)
		rawExchange(t, c, br, "GET /ok HTTP/1.1\r\nHost: h\r\nx-custom: a\r\n\r\n")
		head := nextHead(t, heads)
		if !strings.HasPrefix(head, "GET /ok ") {
			t.Errorf("a refused request reached the server:\n%s", head)
		}
		checkLane(t, head, extra == fastPathOn)
	})
}
