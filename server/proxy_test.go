package server

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/internal/h1"
)

func TestRoundRobinSplitsEvenly(t *testing.T) {
	a, b := backend(t, "a", nil), backend(t, "b", nil)
	p := startProxy(t, "servers:\n"+servers(a, b))
	counts := map[string]int{}
	for range 100 {
		_, body, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/")
		counts[body]++
	}
	if counts["a"] != 50 || counts["b"] != 50 {
		t.Errorf("round robin over 100 requests = %v, want 50/50", counts)
	}
}

func TestWeightedRoundRobinHonoursWeights(t *testing.T) {
	a, b := backend(t, "a", nil), backend(t, "b", nil)
	p := startProxy(t, fmt.Sprintf(`load_balancing: {strategy: weighted_round_robin}
servers:
  - {url: %s, weight: 3}
  - {url: %s, weight: 1}
`, a.URL, b.URL))
	counts := map[string]int{}
	for range 400 {
		_, body, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/")
		counts[body]++
	}
	if counts["a"] != 300 || counts["b"] != 100 {
		t.Errorf("weights 3:1 over 400 requests = %v, want 300/100", counts)
	}
}

func TestForwardingHeaders(t *testing.T) {
	var got atomic.Pointer[http.Request]
	srv := backend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Clone(r.Context()))
		w.Header().Set("Connection", "X-Private")
		w.Header().Set("X-Private", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		io.WriteString(w, "ok")
	})
	p := startProxy(t, "servers:\n"+servers(srv))

	req, _ := http.NewRequest("GET", "http://"+p.Addr()+"/path?q=1", nil)
	req.Host = "shop.example.com"
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("Connection", "X-Hop, keep-alive")
	req.Header.Set("X-Hop", "drop me")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	req.Header.Set("Te", "trailers, deflate")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	in := got.Load()

	if in.Host != "shop.example.com" {
		t.Errorf("Host at server = %q, want the client's shop.example.com", in.Host)
	}
	if v := in.Header.Get("X-Forwarded-For"); v != "203.0.113.7, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want the client's chain with our peer appended", v)
	}
	if v := in.Header.Get("X-Forwarded-Proto"); v != "http" {
		t.Errorf("X-Forwarded-Proto = %q, want http", v)
	}
	if v := in.Header.Get("X-Forwarded-Host"); v != "shop.example.com" {
		t.Errorf("X-Forwarded-Host = %q", v)
	}
	for _, h := range []string{"X-Hop", "Keep-Alive", "Proxy-Authorization"} {
		if v := in.Header.Get(h); v != "" {
			t.Errorf("hop-by-hop %s reached the server: %q", h, v)
		}
	}
	if v := in.Header.Get("Te"); v != "" && v != "trailers" {
		t.Errorf("Te at server = %q, want at most trailers", v)
	}
	if in.URL.RawQuery != "q=1" || in.URL.Path != "/path" {
		t.Errorf("server saw %s?%s, want /path?q=1", in.URL.Path, in.URL.RawQuery)
	}
	id := in.Header.Get("X-Request-Id")
	if len(id) != 32 {
		t.Errorf("generated X-Request-Id = %q, want 32 hex digits", id)
	}
	if v := resp.Header.Get("X-Request-Id"); v != id {
		t.Errorf("client got X-Request-Id %q, server saw %q", v, id)
	}
	for _, h := range []string{"X-Private", "Keep-Alive"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("hop-by-hop response header %s reached the client: %q", h, v)
		}
	}
}

func TestRequestIDKept(t *testing.T) {
	var seen atomic.Value
	srv := backend(t, "a", func(w http.ResponseWriter, r *http.Request) { seen.Store(r.Header.Get("X-Request-Id")) })
	p := startProxy(t, "servers:\n"+servers(srv))
	req, _ := http.NewRequest("GET", "http://"+p.Addr()+"/", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if seen.Load() != "abc-123" || resp.Header.Get("X-Request-Id") != "abc-123" {
		t.Errorf("request id: server %v, client %q; want abc-123 kept both ways", seen.Load(), resp.Header.Get("X-Request-Id"))
	}
}

// TestProxyAnswers checks the answers the proxy makes itself: the status,
// a short text body naming the cause, and no Go error text.
func TestProxyAnswers(t *testing.T) {
	closed := backend(t, "gone", nil)
	closed.Close()
	slow := backend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	cases := []struct {
		name       string
		yaml       string
		want       int
		wantBody   string
		retryAfter bool
	}{
		// Active checks off: they would take the dead server out and make
		// this a 503.
		{"unreachable server is 502", "health_checks: {enabled: false}\nservers:\n" + servers(closed), 502, "502 Bad Gateway", false},
		{"slow server is 504", "health_checks: {enabled: false}\ntimeouts: {response_header: 100ms}\nservers:\n" + servers(slow), 504, "504 Gateway Timeout", false},
		{"server failing its health check is 503", "health_checks: {interval: 1h}\nservers:\n" + servers(closed), 503, "503 Service Unavailable", true},
	}
	bothPaths(t, func(t *testing.T, extra string) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				p := startProxy(t, extra+tc.yaml)
				if tc.want == 503 {
					waitFor(t, "the first health check", func() bool { return !p.ready() })
				}
				status, body, h := get(t, http.DefaultClient, "http://"+p.Addr()+"/")
				if status != tc.want || !strings.HasPrefix(body, tc.wantBody) {
					t.Errorf("got %d %q, want %d %q…", status, body, tc.want, tc.wantBody)
				}
				for _, leak := range []string{"dial", "tcp", "127.0.0.1", "net/http", "timeout awaiting"} {
					if strings.Contains(body, leak) {
						t.Errorf("body %q leaks error detail %q", body, leak)
					}
				}
				if tc.retryAfter && h.Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
				if h.Get("X-Request-Id") == "" {
					t.Error("proxy's own answer has no X-Request-Id")
				}
			})
		}
	})
}

func TestNoServerAvailableIs503WithRetryAfter(t *testing.T) {
	a := backend(t, "a", nil)
	p := startProxy(t, "servers:\n"+servers(a))
	cu := p.rt.Load().upstreams["default"]
	cu.pool.Servers[0].SetDrained(true)
	cu.pool.Refresh(time.Now())
	status, body, h := get(t, http.DefaultClient, "http://"+p.Addr()+"/")
	if status != 503 || !strings.HasPrefix(body, "503 Service Unavailable") {
		t.Errorf("got %d %q, want 503", status, body)
	}
	if h.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}

func TestHugeHeaderIs431(t *testing.T) {
	a := backend(t, "a", nil)
	p := startProxy(t, "servers:\n"+servers(a))
	req, _ := http.NewRequest("GET", "http://"+p.Addr()+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 100<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("100 KiB header: got %d, want 431", resp.StatusCode)
	}
}

// TestContentLengthWithChunkedClosesConnection sends a request framed both
// ways followed by a second request in the same bytes: the smuggling
// pattern of RFC 9112 §11.2. The answer must be followed by the connection
// closing, so the trailing bytes never become a request.
func TestContentLengthWithChunkedClosesConnection(t *testing.T) {
	var paths []string
	seen := make(chan string, 10)
	a := backend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		seen <- r.URL.Path
	})
	p := startProxy(t, "servers:\n"+servers(a))
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw := "POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"0\r\n\r\n" +
		"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the first answer: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 && resp.StatusCode != 400 {
		t.Errorf("status %d, want 400 or 200", resp.StatusCode)
	}
	if _, err := http.ReadResponse(br, nil); err == nil {
		t.Fatal("a second answer came back on the same connection: the trailing bytes were read as a request")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("connection left open after a request framed by both Content-Length and Transfer-Encoding")
	}
	close(seen)
	for p := range seen {
		paths = append(paths, p)
	}
	for _, p := range paths {
		if p == "/smuggled" {
			t.Errorf("server received the smuggled request; paths %v", paths)
		}
	}
}

func TestSlowlorisDoesNotBlockOthers(t *testing.T) {
	a := backend(t, "a", nil)
	p := startProxy(t, "client: {read_header_timeout: 300ms}\nservers:\n"+servers(a))
	var slow []net.Conn
	for range 50 {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		slow = append(slow, c)
	}
	status, body, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/")
	if status != 200 || body != "a" {
		t.Errorf("a normal client behind 50 slow ones got %d %q", status, body)
	}
	// The slow connections are cut once read_header_timeout passes.
	c := slow[0]
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("a connection that never finished its headers was not closed")
	}
}

func TestLargeBodiesStreamBothWays(t *testing.T) {
	const size = 64 << 20
	echo := backend(t, "echo", func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, r.Body)
	})
	p := startProxy(t, "servers:\n"+servers(echo))

	// Heap in use counts garbage not yet collected, from this test and the
	// ones before it: start from a collected heap and collect often, so
	// what is measured is what the relay holds.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	goruntime.GC()
	var base runtimeMemStats
	base.read()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtimeMemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			ms.read()
			if ms.heapInuse() > peak.Load() {
				peak.Store(ms.heapInuse())
			}
		}
	}()
	req, _ := http.NewRequest("POST", "http://"+p.Addr()+"/echo", io.LimitReader(rand.Reader, size))
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	close(stop)
	<-sampled
	if err != nil || n != size {
		t.Fatalf("echoed %d bytes (err %v), want %d", n, err, size)
	}
	// Whole-body buffering anywhere would need 64 MiB or more.
	if grew := peak.Load() - min(peak.Load(), base.heapInuse()); grew > 24<<20 {
		t.Errorf("heap in use grew by %d MiB while relaying 64 MiB each way", grew>>20)
	}
}

func TestServerSentEventsFlushImmediately(t *testing.T) {
	release := make(chan struct{})
	sse := backend(t, "sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "data: last\n\n")
	})
	p := startProxy(t, "servers:\n"+servers(sse))
	defer close(release)
	resp, err := http.Get("http://" + p.Addr() + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event = %q, %v; want it before the stream ends", line, err)
	}
}

func TestRoutingByHostAndPath(t *testing.T) {
	api, web, def := backend(t, "api", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "api "+r.URL.Path) }),
		backend(t, "web", nil), backend(t, "default", nil)
	p := startProxy(t, fmt.Sprintf(`servers:
  - url: %s
upstreams:
  api: {servers: [{url: %s}]}
  web: {servers: [{url: %s}]}
routes:
  - match: {host: api.example.com, path_prefix: /v1}
    upstream: api
    strip_prefix: true
  - match: {host: "*.example.org"}
    upstream: web
`, def.URL, api.URL, web.URL))
	cases := []struct{ host, path, want string }{
		{"api.example.com", "/v1/users", "api /users"},
		{"API.example.com:8080", "/v1", "api /"},
		{"api.example.com", "/v10", "default"},
		{"www.example.org", "/", "web"},
		{"a.b.example.org", "/x", "web"},
		{"example.org", "/", "default"},
		{"other.com", "/v1/users", "default"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest("GET", "http://"+p.Addr()+tc.path, nil)
		req.Host = tc.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != tc.want {
			t.Errorf("%s%s went to %q, want %q", tc.host, tc.path, b, tc.want)
		}
	}
}

// The main listener serves plain HTTP/1.1 through the fast path unless
// client.fast_path is off; behaviour is the same either way, so only the
// wiring tells.
func TestFastPathWiring(t *testing.T) {
	srv := backend(t, "a", nil)
	for _, tc := range []struct {
		extra string
		fast  bool
	}{
		{fastPathOn, true},
		{"client: {fast_path: false}\n", false},
	} {
		p := startProxy(t, tc.extra+"servers:\n"+servers(srv))
		p.mu.Lock()
		_, fast := p.main.srv.(*h1.Server)
		p.mu.Unlock()
		if fast != tc.fast {
			t.Errorf("config %q: main listener on the fast path %v, want %v", tc.extra, fast, tc.fast)
		}
		if code, _, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/"); code != http.StatusOK {
			t.Errorf("config %q: status %d", tc.extra, code)
		}
	}
}

// A client that leaves while its request waits on a server ends the
// server's request too, on both the fast path and net/http's: a slow
// backend must not keep working, nor keep a pooled connection, for nobody.
func TestClientGoneCancelsTheServersRequest(t *testing.T) {
	for _, extra := range []string{"", "client: {fast_path: false}\n"} {
		arrived := make(chan struct{}, 1)
		gone := make(chan struct{}, 1)
		srv := backend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			select {
			case <-r.Context().Done():
				gone <- struct{}{}
			case <-time.After(10 * time.Second):
			}
		})
		p := startProxy(t, extra+"health_checks: {enabled: false}\nservers:\n"+servers(srv))
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatalf("config %q: the request never reached the server", extra)
		}
		c.Close()
		select {
		case <-gone:
		case <-time.After(5 * time.Second):
			t.Errorf("config %q: the server's request went on after the client left", extra)
		}
	}
}
