package forward

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/internal/reqinfo"
	"github.com/tbsphathuynh/proxy/upstream"
)

// relay is a route in front of real backends, served by a real
// http.Server so hijacking, flushing and aborts behave as in production.
type relay struct {
	route   *Route
	up      *Upstream
	servers []*upstream.Server
	front   *httptest.Server
	// last is the record of the last request served, once its handler
	// returned.
	last atomic.Pointer[served]
}

type served struct {
	info   reqinfo.Info
	status int
}

// statusWriter records the status like the tracking middleware does, and
// exposes the writer underneath for flushing and hijacking.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 || w.status < 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func newRelay(t testing.TB, tweak func(*Upstream), backends ...string) *relay {
	t.Helper()
	reg := upstream.NewRegistry()
	var servers []*upstream.Server
	for i, b := range backends {
		u, err := url.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("s%d", i+1)
		servers = append(servers, &upstream.Server{Name: name, URL: u, Weight: 1, State: reg.State(name)})
	}
	tr := NewTransport(Timeouts{Connect: time.Second, ResponseHeader: 5 * time.Second, IdleConnection: time.Minute}, TransportOptions{})
	t.Cleanup(tr.CloseIdleConnections)
	up := &Upstream{Name: "test", Pool: upstream.NewPool("test", servers), Picker: first{}, Transport: tr, RetryAfter: "7"}
	if tweak != nil {
		tweak(up)
	}
	rl := &relay{up: up, servers: servers}
	rl.route = NewRoute("r", up, "", slog.New(slog.NewTextHandler(io.Discard, nil)))
	rl.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := &served{info: reqinfo.Info{RequestID: "rid-test"}}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			s.status = sw.status
			if s.status == 0 && s.info.Err != nil {
				s.status = 499
			}
			rl.last.Store(s)
		}()
		rl.route.ServeHTTP(sw, r.WithContext(reqinfo.With(r.Context(), &s.info)))
	}))
	t.Cleanup(rl.front.Close)
	return rl
}

// waitServed waits for the handler of the last request to return.
func (rl *relay) waitServed(t testing.TB) *served {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if s := rl.last.Swap(nil); s != nil {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("handler never returned\n%s", buf[:runtime.Stack(buf, true)])
	return nil
}

// idle waits until no server counts a request in flight.
func (rl *relay) idle(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		busy := false
		for _, s := range rl.servers {
			if s.InFlight() != 0 {
				busy = true
			}
		}
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a server still counts a request in flight")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawExchange sends a raw HTTP/1.1 request and returns the parsed response
// with its body read.
func rawExchange(t *testing.T, addr, raw string) (*http.Response, string) {
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
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestRequestHeadersRewritten(t *testing.T) {
	var got atomic.Pointer[http.Request]
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Clone(context.Background()))
	}))
	defer be.Close()
	rl := newRelay(t, nil, be.URL)

	resp, _ := rawExchange(t, rl.front.Listener.Addr().String(), "GET /p?q=1 HTTP/1.1\r\n"+
		"Host: shop.example.com\r\n"+
		"Connection: X-Hop, keep-alive\r\n"+
		"X-Hop: secret\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"Proxy-Authorization: Basic eDp5\r\n"+
		"Te: trailers, deflate\r\n"+
		"Forwarded: for=198.51.100.9\r\n"+
		"X-Forwarded-For: 203.0.113.7\r\n"+
		"X-Forwarded-For: 198.51.100.1\r\n"+
		"X-Forwarded-Host: spoofed.example\r\n"+
		"X-Forwarded-Proto: https\r\n"+
		"X-Request-Id: client-id\r\n"+
		"X-Keep: 1\r\n"+
		"X-Keep: 2\r\n"+
		"\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	r := got.Load()
	if r == nil {
		t.Fatal("backend saw no request")
	}
	for _, h := range []string{"Connection", "X-Hop", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Forwarded", "User-Agent"} {
		if v, ok := r.Header[h]; ok {
			t.Errorf("%s forwarded: %q", h, v)
		}
	}
	want := map[string]string{
		"X-Forwarded-For":   "203.0.113.7, 198.51.100.1, 127.0.0.1",
		"X-Forwarded-Host":  "shop.example.com",
		"X-Forwarded-Proto": "http",
		"Te":                "trailers",
		"X-Request-Id":      "rid-test",
	}
	for k, v := range want {
		if got := strings.Join(r.Header[k], "|"); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if got := strings.Join(r.Header["X-Keep"], "|"); got != "1|2" {
		t.Errorf("X-Keep = %q, want both values", got)
	}
	if r.Host != "shop.example.com" {
		t.Errorf("Host = %q", r.Host)
	}
	if r.URL.RequestURI() != "/p?q=1" {
		t.Errorf("target = %q", r.URL.RequestURI())
	}
	rl.idle(t)
}

func TestForwardedForNamedInConnectionStartsAFreshChain(t *testing.T) {
	var got atomic.Pointer[http.Request]
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Clone(context.Background()))
	}))
	defer be.Close()
	rl := newRelay(t, nil, be.URL)
	rawExchange(t, rl.front.Listener.Addr().String(), "GET / HTTP/1.1\r\nHost: h\r\n"+
		"Connection: X-Forwarded-For\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n")
	if xff := got.Load().Header["X-Forwarded-For"]; len(xff) != 1 || xff[0] != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want only the peer", xff)
	}
}

func TestResponseHopByHopHeadersRemoved(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Private")
		w.Header().Set("X-Private", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Proxy-Authenticate", "Basic")
		w.Header().Set("X-Public", "ok")
		io.WriteString(w, "body")
	}))
	defer be.Close()
	rl := newRelay(t, nil, be.URL)
	resp, body := rawExchange(t, rl.front.Listener.Addr().String(), "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	for _, h := range []string{"X-Private", "Keep-Alive", "Proxy-Authenticate"} {
		if v, ok := resp.Header[h]; ok {
			t.Errorf("%s relayed: %q", h, v)
		}
	}
	if resp.Header.Get("X-Public") != "ok" || body != "body" {
		t.Errorf("X-Public %q, body %q", resp.Header.Get("X-Public"), body)
	}
}

func TestQueryWithSemicolonsIsCleaned(t *testing.T) {
	var got atomic.Value
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.URL.RawQuery)
	}))
	defer be.Close()
	rl := newRelay(t, nil, be.URL)
	rawExchange(t, rl.front.Listener.Addr().String(), "GET /?x=1&a=1;b=2 HTTP/1.1\r\nHost: h\r\n\r\n")
	if q := got.Load(); q != "x=1" {
		t.Errorf("query = %q, want the unparsable pair dropped", q)
	}
}

func TestRequestBodiesForwarded(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d %v %s", r.ContentLength, r.TransferEncoding, b)
	}))
	defer be.Close()
	rl := newRelay(t, nil, be.URL)
	addr := rl.front.Listener.Addr().String()
	cases := []struct{ name, req, want string }{
		{"none", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "0 [] "},
		{"length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", "5 [] hello"},
		{"chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "-1 [chunked] hello"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, body := rawExchange(t, addr, tc.req)
			if body != tc.want {
				t.Errorf("backend saw %q, want %q", body, tc.want)
			}
		})
	}
	rl.idle(t)
}

func TestTrailersRelayed(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "data")
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	}))
	defer be.Close()
	rl := newRelay(t, nil, be.URL)
	resp, err := http.Get(rl.front.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "data" {
		t.Errorf("body %q", body)
	}
	if resp.Trailer.Get("X-Sum") != "42" || resp.Trailer.Get("X-Late") != "yes" {
		t.Errorf("trailers = %v", resp.Trailer)
	}
}

// The 1xx reaches the client whether the exchange goes through the
// forwarder's own client (no body) or through http.Transport (a body).
func TestInformationalResponsesRelayed(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	}))
	defer be.Close()
	rl := newRelay(t, nil, be.URL)
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			var hints []string
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				// The placeholder length the relay sets while sending a 1xx
				// must not show.
				hints = append(hints, fmt.Sprintf("%d %s%s", code, h.Get("Link"), h.Get("Content-Length")))
				return nil
			}}
			var body io.Reader
			if method == "POST" {
				body = strings.NewReader("payload")
			}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), method, rl.front.URL, body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if len(hints) != 1 || hints[0] != "103 </style.css>; rel=preload; as=style" {
				t.Errorf("1xx seen by the client: %q", hints)
			}
			if resp.StatusCode != 200 || string(got) != "final" || resp.Header.Get("Link") != "" || resp.ContentLength != 5 {
				t.Errorf("final: %d %q Link=%q", resp.StatusCode, got, resp.Header.Get("Link"))
			}
			if s := rl.waitServed(t); s.status != 200 {
				t.Errorf("recorded status %d, want 200", s.status)
			}
		})
	}
}

func TestInformationalResponseKeepsHeadersSetBefore(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "final")
	}))
	defer be.Close()
	rl := newRelay(t, nil, be.URL)
	// A header set before the proxy runs (the request ID, rate-limit
	// headers) must reach the final response, not only the 1xx.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Set-Before", "yes")
		rl.route.ServeHTTP(w, r)
	})
	front := httptest.NewServer(h)
	defer front.Close()
	resp, err := http.Get(front.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Set-Before") != "yes" {
		t.Errorf("a header set before the 1xx was lost: %v", resp.Header)
	}
}

// firstChunkBeforeEnd checks that a streamed response's first chunk reaches
// the client while the backend is still writing.
func firstChunkBeforeEnd(t *testing.T, contentType string) {
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "data: two\n\n")
	}))
	defer be.Close()
	defer close(release)
	rl := newRelay(t, nil, be.URL)
	resp, err := http.Get(rl.front.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(resp.Body).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if l != "data: one\n" {
			t.Errorf("first line %q", l)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("first chunk did not arrive before the stream ended")
	}
}

func TestServerSentEventsFlushed(t *testing.T) {
	firstChunkBeforeEnd(t, "Text/Event-Stream; charset=utf-8")
}
func TestUnknownLengthFlushed(t *testing.T) { firstChunkBeforeEnd(t, "application/octet-stream") }

func TestUpgradeRelayed(t *testing.T) {
	var sawConn, sawUpgrade atomic.Value
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawConn.Store(r.Header.Get("Connection"))
		sawUpgrade.Store(r.Header.Get("Upgrade"))
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw)
	}))
	defer be.Close()
	rl := newRelay(t, nil, be.URL)
	rl.route.AllowUpgrades([]string{"websocket", "ECHO"})

	c, err := net.Dial("tcp", rl.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "echo" {
		t.Fatalf("answer %d, Upgrade %q", resp.StatusCode, resp.Header.Get("Upgrade"))
	}
	for _, msg := range []string{"ping", "pong"} {
		io.WriteString(c, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q, %v", buf, err)
		}
	}
	if sawConn.Load() != "Upgrade" || sawUpgrade.Load() != "echo" {
		t.Errorf("backend saw Connection %q, Upgrade %q", sawConn.Load(), sawUpgrade.Load())
	}
	c.Close()
	if s := rl.waitServed(t); s.status != 101 && s.status != 0 {
		t.Logf("recorded status %d", s.status)
	}
	rl.idle(t)
}

func TestUpgradeToAnotherProtocolRefused(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, _ := http.NewResponseController(w).Hijack()
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: other\r\n\r\n")
		brw.Flush()
	}))
	defer be.Close()
	rl := newRelay(t, nil, be.URL)
	resp, _ := rawExchange(t, rl.front.Listener.Addr().String(), "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	if resp.StatusCode != 502 {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
	rl.idle(t)
}

func TestClientGoneIs499(t *testing.T) {
	arrived := make(chan struct{})
	gone := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
		close(gone)
	}))
	defer be.Close()
	rl := newRelay(t, nil, be.URL)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", rl.front.URL, nil)
	done := make(chan error, 1)
	go func() {
		_, err := http.DefaultClient.Do(req)
		done <- err
	}()
	<-arrived
	cancel()
	<-done
	s := rl.waitServed(t)
	if s.status != 499 || !errors.Is(s.info.Err, context.Canceled) {
		t.Errorf("status %d, err %v; want 499 and context.Canceled", s.status, s.info.Err)
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Error("the backend's request was not cancelled")
	}
	rl.idle(t)
}

func TestProxyMadeAnswers(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	}))
	defer slow.Close()

	cases := []struct {
		name    string
		backend string
		tweak   func(*Upstream)
		status  int
		header  string
	}{
		{"unreachable", dead, nil, 502, ""},
		{"timeout", slow.URL, func(u *Upstream) {
			u.Transport = NewTransport(Timeouts{Connect: time.Second, ResponseHeader: 50 * time.Millisecond}, TransportOptions{})
		}, 504, ""},
		{"per-try timeout", slow.URL, func(u *Upstream) { u.Retry.PerTryTimeout = 50 * time.Millisecond }, 504, ""},
		{"none available", slow.URL, func(u *Upstream) { u.Pool = upstream.NewPool("empty", nil) }, 503, "7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rl := newRelay(t, tc.tweak, tc.backend)
			resp, body := rawExchange(t, rl.front.Listener.Addr().String(), "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("Retry-After"); got != tc.header {
				t.Errorf("Retry-After %q, want %q", got, tc.header)
			}
			if !strings.HasPrefix(body, fmt.Sprint(tc.status)) || strings.Contains(body, "dial") {
				t.Errorf("body %q", body)
			}
			if s := rl.waitServed(t); s.info.Err == nil {
				t.Error("the cause was not recorded for the log")
			}
			rl.idle(t)
		})
	}
}

func TestFallbackAnswersWhenTheUpstreamCannot(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	rl := newRelay(t, nil, dead)
	rl.route.SetFallback(Static(200, "maintenance\n", http.Header{"X-Fallback": {"1"}}))
	resp, body := rawExchange(t, rl.front.Listener.Addr().String(), "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp.StatusCode != 200 || body != "maintenance\n" || resp.Header.Get("X-Fallback") != "1" {
		t.Errorf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

func TestDialFailureRetriedOnAnotherServer(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") }))
	defer be.Close()
	rl := newRelay(t, func(u *Upstream) { u.Retry.Attempts, u.Retry.MaxBodyBytes = 1, 1024 }, dead, be.URL)
	resp, body := rawExchange(t, rl.front.Listener.Addr().String(), "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
	if resp.StatusCode != 200 || body != "b" {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	if s := rl.waitServed(t); s.info.Retries != 1 || s.info.Server != "s2" {
		t.Errorf("retries %d, server %q", s.info.Retries, s.info.Server)
	}
	rl.idle(t)
}

func TestBrokenUpstreamBodyAbortsTheResponse(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, _ := http.NewResponseController(w).Hijack()
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
		brw.Flush()
		c.Close()
	}))
	defer be.Close()
	rl := newRelay(t, nil, be.URL)
	// The client must see an error: no answer at all, or a body cut
	// short; never a complete-looking response.
	resp, err := http.Get(rl.front.URL)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("the client read a truncated body as complete")
	}
	rl.idle(t)
}

func TestKeepAliveToServersReused(t *testing.T) {
	var conns atomic.Int64
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "x") }))
	be.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	be.Start()
	defer be.Close()
	rl := newRelay(t, nil, be.URL)
	for range 50 {
		resp, err := http.Get(rl.front.URL)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections to the server for 50 sequential requests, want 1", n)
	}
	rl.idle(t)
}

// An upgrade to a protocol the route does not allow, and h2c always, is
// forwarded as an ordinary request without its Upgrade and Connection
// tokens: a tunnel would carry later requests past routing, header
// rewriting and rate limits. A 101 that nobody asked for is a broken
// answer, not a tunnel.
func TestUpgradeOnlyToAllowedProtocols(t *testing.T) {
	type seen struct{ conn, upgrade, settings string }
	saw := make(chan seen, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		saw <- seen{r.Header.Get("Connection"), r.Header.Get("Upgrade"), r.Header.Get("HTTP2-Settings")}
		if r.URL.Path == "/switch" {
			// A broken server: switches whatever was asked.
			c, brw, _ := http.NewResponseController(w).Hijack()
			defer c.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n\r\n")
			brw.Flush()
			io.Copy(c, brw)
			return
		}
		io.WriteString(w, "plain")
	}))
	defer be.Close()
	rl := newRelay(t, nil, be.URL)
	rl.route.AllowUpgrades([]string{"websocket", "h2c"})
	for _, tc := range []struct{ name, head string }{
		{"h2c, even listed", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n"},
		{"a protocol not listed", "Connection: Upgrade\r\nUpgrade: echo\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", rl.front.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n"+tc.head+"\r\n")
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(io.LimitReader(res.Body, 100))
			if res.StatusCode != 200 || string(b) != "plain" {
				t.Fatalf("answer %d %q, want the ordinary 200", res.StatusCode, b)
			}
			if s := <-saw; s != (seen{}) {
				t.Errorf("the server saw Connection %q, Upgrade %q, HTTP2-Settings %q; want none", s.conn, s.upgrade, s.settings)
			}
		})
	}
	t.Run("101 nobody asked for", func(t *testing.T) {
		// A POST goes through http.Transport, which returns such a 101.
		res, err := http.Post(rl.front.URL+"/switch", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		<-saw
		if res.StatusCode != http.StatusBadGateway {
			t.Errorf("answer %d, want 502", res.StatusCode)
		}
	})
}

// A status code below 100 is invalid (RFC 9110 §15: a status code is
// three digits, its first 1 to 5), though http.ReadResponse takes "000"
// as 0: such an answer is the server's error, 502, on either path (GET
// through this package's client, POST through http.Transport). Relayed,
// it made WriteHeader panic; our client also took it for an informational
// answer and relayed it as one.
func TestRelayRefusesAStatusBelow100(t *testing.T) {
	for _, status := range []string{"000 Zero", "099 Low"} {
		for _, method := range []string{"GET", "POST"} {
			t.Run(status+"/"+method, func(t *testing.T) {
				s := newStrayServer(t, func(*http.Request) string {
					return "HTTP/1.1 " + status + "\r\nContent-Length: 2\r\n\r\nok"
				})
				rl := newRelay(t, nil, "http://"+s.addr)
				req, _ := http.NewRequest(method, rl.front.URL+"/", strings.NewReader("x"))
				if method == "GET" {
					req.Body, req.ContentLength = nil, 0
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusBadGateway {
					t.Errorf("answer %d, want 502", res.StatusCode)
				}
				rl.waitServed(t)
				rl.idle(t)
			})
		}
	}
}
