package forward

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/tbsphathuynh/proxy/internal/sched"
)

// countingServer is an httptest server that counts the connections it
// accepted and closed.
type countingServer struct {
	*httptest.Server
	opened, closed atomic.Int64
}

func newCountingServer(t *testing.T, h http.HandlerFunc) *countingServer {
	s := &countingServer{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func newTestTransport(t *testing.T, to Timeouts) *http.Transport {
	tr := NewTransport(to, TransportOptions{})
	t.Cleanup(func() { CloseIdleConnections(tr) })
	return tr
}

func do(t *testing.T, rt http.RoundTripper, method, url string, body io.Reader) (int, string, error) {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	res, err := rt.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, string(b), err
}

func TestClientTakesOnlyBodylessPlainRequests(t *testing.T) {
	c := registerClient(&http.Transport{})
	cases := []struct {
		name  string
		req   func() *http.Request
		takes bool
	}{
		{"GET", func() *http.Request { r, _ := http.NewRequest("GET", "http://h/", nil); return r }, true},
		{"HEAD", func() *http.Request { r, _ := http.NewRequest("HEAD", "http://h/", nil); return r }, true},
		{"DELETE", func() *http.Request { r, _ := http.NewRequest("DELETE", "http://h/", nil); return r }, true},
		{"POST with body", func() *http.Request {
			r, _ := http.NewRequest("POST", "http://h/", strings.NewReader("x"))
			return r
		}, false},
		{"upgrade", func() *http.Request {
			r, _ := http.NewRequest("GET", "http://h/", nil)
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", "websocket")
			return r
		}, false},
		{"close", func() *http.Request { r, _ := http.NewRequest("GET", "http://h/", nil); r.Close = true; return r }, false},
	}
	for _, tc := range cases {
		if got := handles(tc.req()); got != tc.takes {
			t.Errorf("%s: handles = %v, want %v", tc.name, got, tc.takes)
		}
	}
	r, _ := http.NewRequest("POST", "http://h/", strings.NewReader("x"))
	if _, err := c.RoundTrip(r); err != http.ErrSkipAltProtocol {
		t.Errorf("POST with a body: %v, want ErrSkipAltProtocol", err)
	}
}

func TestClientKeepsConnectionsAlive(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/chunked":
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		default:
			io.WriteString(w, "hello")
		}
	})
	tr := newTestTransport(t, Timeouts{})
	for _, path := range []string{"/", "/empty", "/chunked", "/", "/empty"} {
		if _, _, err := do(t, tr, "GET", s.URL+path, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := do(t, tr, "HEAD", s.URL+path, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.opened.Load(); n != 1 {
		t.Errorf("%d connections for 10 sequential requests, want 1", n)
	}
}

func TestClientRetriesAConnectionTheServerClosed(t *testing.T) {
	// Answers one request per connection, then closes it without saying
	// so, as a server whose keep-alive timeout just passed would.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int64
	closed := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer func() { c.Close(); closed <- struct{}{} }()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.Method), req.Method)
			}()
		}
	}()
	tr := newTestTransport(t, Timeouts{})
	url := "http://" + ln.Addr().String() + "/"
	for i, method := range []string{"GET", "GET", "DELETE", "GET", "POST", "OPTIONS"} {
		code, body, err := do(t, tr, method, url, nil)
		if err != nil || code != 200 || body != method {
			t.Fatalf("request %d (%s): %d %q %v", i, method, code, body, err)
		}
		// The server has closed the connection before the next request
		// (on loopback its FIN is with us when Close returns).
		<-closed
	}
	if n := conns.Load(); n < 6 {
		t.Errorf("%d connections for 6 requests on a server that closes each", n)
	}
}

func TestClientClosesWhatItCannotReuse(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		case "/big":
			io.WriteString(w, strings.Repeat("x", 1<<20))
		default:
			io.WriteString(w, "ok")
		}
	})
	tr := newTestTransport(t, Timeouts{})

	do(t, tr, "GET", s.URL+"/close", nil)
	do(t, tr, "GET", s.URL+"/", nil)
	if n := s.opened.Load(); n != 2 {
		t.Errorf("after Connection: close, %d connections, want 2", n)
	}

	// A body closed before its end leaves the connection mid-answer.
	req, _ := http.NewRequest("GET", s.URL+"/big", nil)
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(res.Body, make([]byte, 10))
	res.Body.Close()
	do(t, tr, "GET", s.URL+"/", nil)
	if n := s.opened.Load(); n != 3 {
		t.Errorf("after a body closed early, %d connections, want 3", n)
	}
}

func TestClientDropsAConnectionWithExtraBytes(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
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
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					// A second, unasked-for answer right behind the first.
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil")
				}
			}()
		}
	}()
	tr := newTestTransport(t, Timeouts{})
	url := "http://" + ln.Addr().String() + "/"
	for range 3 {
		if _, body, err := do(t, tr, "GET", url, nil); err != nil || body != "ok" {
			t.Fatalf("got %q, %v", body, err)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want a new one each time", n)
	}
}

func TestClientLimitsResponseHeaders(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", strings.Repeat("x", 64<<10))
	})
	c := registerClient(&http.Transport{MaxResponseHeaderBytes: 16 << 10})
	defer c.closeIdle()
	req, _ := http.NewRequest("GET", s.URL, nil)
	if _, err := c.RoundTrip(req); err == nil {
		t.Error("a 64 KiB header passed a 16 KiB limit")
	}
}

func TestClientGivesUpOnEndlessInformationalAnswers(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		http.ReadRequest(bufio.NewReader(c))
		for range 20 {
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	}()
	tr := newTestTransport(t, Timeouts{})
	if _, _, err := do(t, tr, "GET", "http://"+ln.Addr().String()+"/", nil); !errors.Is(err, errTooMany1xx) {
		t.Errorf("err = %v, want %v", err, errTooMany1xx)
	}
}

func TestClientHonoursTheContext(t *testing.T) {
	release := make(chan struct{})
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			io.WriteString(w, "first")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	tr := newTestTransport(t, Timeouts{})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/wait", nil)
	start := time.Now()
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for headers: %v, want the context's error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v to notice", d)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx2, "GET", s.URL+"/stream", nil)
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(res.Body, make([]byte, 5))
	cancel2()
	if _, err := io.ReadAll(res.Body); !errors.Is(err, context.Canceled) {
		t.Errorf("reading the body: %v, want context.Canceled", err)
	}
	res.Body.Close()
}

func TestClientClosesIdleConnections(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	tr := newTestTransport(t, Timeouts{IdleConnection: 50 * time.Millisecond})
	do(t, tr, "GET", s.URL, nil)
	waitFor(t, "the idle timeout to close the connection", func() bool { return s.closed.Load() == 1 })

	tr2 := newTestTransport(t, Timeouts{})
	do(t, tr2, "GET", s.URL, nil)
	CloseIdleConnections(tr2)
	waitFor(t, "CloseIdleConnections to close the connection", func() bool { return s.closed.Load() == 2 })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClientUnderConcurrentLoad(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	})
	tr := newTestTransport(t, Timeouts{})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				path := fmt.Sprintf("/%d/%d", g, i)
				if _, body, err := do(t, tr, "GET", s.URL+path, nil); err != nil || body != path {
					t.Errorf("%s: %q %v", path, body, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := s.opened.Load(); n > 16 {
		t.Errorf("%d connections for 16 concurrent clients", n)
	}
}

func TestClientKeepsTheConnectionOfAnAbandonedRequest(t *testing.T) {
	// The server goes on only once the client has left: a loaded machine
	// cannot turn the abandoned answers into finished ones.
	arrived, slowGo, partsGo, done := make(chan struct{}, 1), make(chan struct{}), make(chan struct{}), make(chan struct{})
	defer close(done)
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			arrived <- struct{}{}
			select {
			case <-slowGo:
			case <-done:
			}
			io.WriteString(w, "late")
		case "/parts":
			io.WriteString(w, "first part;")
			w.(http.Flusher).Flush()
			select {
			case <-partsGo:
			case <-done:
			}
			io.WriteString(w, strings.Repeat("x", 1000))
		default:
			io.WriteString(w, "ok")
		}
	})
	tr := newTestTransport(t, Timeouts{})

	// The client leaves while the server is still working on the answer.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-arrived:
			cancel()
		case <-done:
		}
	}()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/slow", nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the context's", err)
	}
	close(slowGo)
	waitFor(t, "the rescued connection back in the pool", func() bool { return idleConns(tr) == 1 })
	do(t, tr, "GET", s.URL+"/", nil)

	// The client reads a little of the body and leaves.
	req, _ = http.NewRequest("GET", s.URL+"/parts", nil)
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(res.Body, make([]byte, 5))
	res.Body.Close()
	close(partsGo)
	waitFor(t, "the rescued connection back in the pool", func() bool { return idleConns(tr) == 1 })
	do(t, tr, "GET", s.URL+"/", nil)

	if n := s.opened.Load(); n != 1 {
		t.Errorf("%d connections, want the one kept through both aborts", n)
	}
}

func TestClientClosingAnEndlessStreamReturnsAtOnce(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		for r.Context().Err() == nil {
			io.WriteString(w, "data: tick\n\n")
			w.(http.Flusher).Flush()
			time.Sleep(time.Millisecond)
		}
	})
	tr := newTestTransport(t, Timeouts{})
	req, _ := http.NewRequest("GET", s.URL, nil)
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(res.Body, make([]byte, 20))
	start := time.Now()
	res.Body.Close()
	// Reading the stream to its end would never return.
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v on an endless stream", d)
	}
	// The rescue gives up on it and the server sees the connection close.
	waitFor(t, "the stream's connection to close", func() bool { return s.closed.Load() == 1 })
}

// idleConns counts the connections the client on tr keeps.
func idleConns(tr *http.Transport) int {
	pcs, ok := idlePconns(tr)
	if !ok {
		return -1
	}
	return len(pcs)
}

// idlePconns is the connections the client on tr keeps; ok is false when
// tr has no client of this package.
func idlePconns(tr *http.Transport) (pcs []*pconn, ok bool) {
	v, ok := clients.Load(weak.Make(tr))
	if !ok {
		return nil, false
	}
	c := v.(*client)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.idle {
		pcs = append(pcs, l...)
	}
	return pcs, true
}

// strayServer is a raw HTTP/1.1 server that answers every request with
// answer, and after the answer to /first waits for bytes on stray and
// writes them too, outside any answer: a broken server, or a HEAD
// answered as a GET. A test sends them once the proxy has read the
// answer, so they come in a later segment; wrote gets a value once they
// are in the proxy's socket, so the test knows the next request finds
// them there, with no sleep.
type strayServer struct {
	addr   string
	conns  atomic.Int64
	stray  chan string
	wrote  chan struct{}
	answer func(req *http.Request) string
}

func newStrayServer(t *testing.T, answer func(req *http.Request) string) *strayServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &strayServer{addr: ln.Addr().String(), stray: make(chan string, 1), wrote: make(chan struct{}, 1), answer: answer}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.WriteString(c, s.answer(req))
					if req.URL.Path == "/first" {
						io.WriteString(c, <-s.stray)
						s.wrote <- struct{}{}
					}
				}
			}()
		}
	}()
	return s
}

// Bytes a server sends after an answer's end, in a later segment, never
// become the next request's answer, whatever its method and however soon
// it comes (RFC 9112 §6.3): the connection holding them is closed and
// reported, and the request goes out on a new one.
func TestClientNeverReusesAConnectionHoldingStrayBytes(t *testing.T) {
	const smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Injected: yes\r\nSet-Cookie: session=attacker\r\n\r\nsmuggled!\n"
	cases := []struct {
		name, method string
		answer       string
	}{
		{"body longer than its length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"body after a HEAD answer", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"},
		{"body after 204", "GET", "HTTP/1.1 204 No Content\r\n\r\n"},
		{"body after 304", "GET", "HTTP/1.1 304 Not Modified\r\n\r\n"},
		{"chunked answer, then more", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
	}
	for _, tc := range cases {
		for _, next := range []string{"GET", "HEAD", "OPTIONS", "DELETE", "POST"} {
			t.Run(tc.name+"/then "+next, func(t *testing.T) {
				s := newStrayServer(t, func(req *http.Request) string {
					if req.URL.Path == "/first" {
						return tc.answer
					}
					if req.Method == "HEAD" {
						return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Real: yes\r\n\r\n"
					}
					return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Real: yes\r\n\r\nreal\n"
				})
				var reports []error
				var mu sync.Mutex
				tr := NewTransport(Timeouts{}, TransportOptions{ProtocolError: func(_ context.Context, err error) {
					mu.Lock()
					reports = append(reports, err)
					mu.Unlock()
				}})
				t.Cleanup(func() { CloseIdleConnections(tr) })

				if _, _, err := do(t, tr, tc.method, "http://"+s.addr+"/first", nil); err != nil {
					t.Fatal(err)
				}
				s.stray <- smuggled
				<-s.wrote
				var body io.Reader
				if next == "POST" {
					body = strings.NewReader("x")
				}
				req, _ := http.NewRequest(next, "http://"+s.addr+"/next", body)
				res, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.Header.Get("X-Injected") != "" || res.Header.Get("Set-Cookie") != "" || res.Header.Get("X-Real") != "yes" {
					t.Fatalf("the next request got the stray bytes as its answer: %d %v %q", res.StatusCode, res.Header, b)
				}
				if next == "POST" {
					// http.Transport, which carries requests with a body,
					// has its own watch on idle connections.
					return
				}
				mu.Lock()
				defer mu.Unlock()
				var ue *UnsolicitedError
				if len(reports) != 1 || !errors.As(reports[0], &ue) || !strings.HasPrefix(string(ue.Start), "HTTP/1.1 200 OK") {
					t.Errorf("reports %v, want one UnsolicitedError starting with the stray bytes", reports)
				}
			})
		}
	}
}

// Bytes beyond an answer's framing that come in the same segment as the
// answer are found when the answer ends, and the connection is not pooled.
func TestClientClosesAConnectionWithBytesBeyondTheAnswer(t *testing.T) {
	s := newStrayServer(t, func(req *http.Request) string {
		if req.URL.Path == "/one" {
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood"
	})
	reported := make(chan error, 4)
	tr := NewTransport(Timeouts{}, TransportOptions{ProtocolError: func(_ context.Context, err error) { reported <- err }})
	t.Cleanup(func() { CloseIdleConnections(tr) })
	if _, body, err := do(t, tr, "GET", "http://"+s.addr+"/one", nil); err != nil || body != "ok" {
		t.Fatalf("first: %q, %v", body, err)
	}
	if _, body, err := do(t, tr, "GET", "http://"+s.addr+"/next", nil); err != nil || body != "good" {
		t.Fatalf("next: %q, %v", body, err)
	}
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the first must not be reused", n)
	}
	select {
	case <-reported:
	default:
		t.Error("the stray bytes were not reported")
	}
}

// A connection whose last answer came whole with its head keeps the
// header timeout's deadline while idle; once that has expired the
// connection must still be reused, by a request it probes first (not
// replayable) as by one it does not.
func TestClientReusesAConnectionPastItsHeaderDeadline(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	// The timeout is long enough for a loaded machine to answer in, and
	// each request after the first comes once the connection has been
	// idle past it (a sleep that ends late only idles it longer).
	const timeout = time.Second
	tr := newTestTransport(t, Timeouts{ResponseHeader: timeout})
	for i, method := range []string{"GET", "DELETE", "GET"} {
		if i > 0 {
			time.Sleep(timeout + headerSlack + 50*time.Millisecond)
		}
		if _, body, err := do(t, tr, method, s.URL, nil); err != nil || body != "hello" {
			t.Fatalf("%s: %q, %v", method, body, err)
		}
	}
	if n := s.opened.Load(); n != 1 {
		t.Errorf("%d connections for 3 sequential requests, want 1", n)
	}
}

// After a burst of quick exchanges on one connection, whose header
// deadlines are reused rather than set each time, the header timeout still
// ends a slow answer, and not before its time.
func TestClientHeaderTimeoutAfterABurst(t *testing.T) {
	// Long enough for a loaded machine to answer each quick request in.
	const timeout = time.Second
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "hello")
	})
	tr := newTestTransport(t, Timeouts{ResponseHeader: timeout})
	// The burst outlasts the timeout: a deadline kept from its start
	// would end one of its later requests.
	for i := range 50 {
		if _, body, err := do(t, tr, "GET", s.URL+"/quick", nil); err != nil || body != "hello" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
		time.Sleep(timeout / 40)
	}
	start := time.Now()
	_, _, err := do(t, tr, "GET", s.URL+"/slow", nil)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("slow answer: %v, want a timeout", err)
	}
	if d := time.Since(start); d < timeout {
		t.Errorf("timed out after %v, before the %v header timeout", d, timeout)
	}
	if n := s.opened.Load(); n != 1 {
		t.Errorf("%d connections, want the burst and the slow request on one", n)
	}
}

// Under load a read that finds nothing yields and reads again rather than
// parking (package sched). An answer that comes after those reads still
// arrives whole, and every behaviour of the client holds with reads that
// spin.
func TestClientReadsAgainWhileTheSchedulerIsBusy(t *testing.T) {
	defer sched.AlwaysBusy()()
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/late" {
			// Long after the client's reads have all found nothing.
			time.Sleep(200 * time.Millisecond)
		}
		io.WriteString(w, "hello")
	})
	tr := newTestTransport(t, Timeouts{})
	for i, path := range []string{"/late", "/quick", "/late"} {
		if _, body, err := do(t, tr, "GET", s.URL+path, nil); err != nil || body != "hello" {
			t.Fatalf("%s: %q, %v", path, body, err)
		}
		pcs, _ := idlePconns(tr)
		var spins []int
		for _, pc := range pcs {
			spins = append(spins, pc.wait.Spins())
		}
		// (After it, the server is one that takes its time: see
		// TestClientParksAtOnceForASlowServer.)
		if i == 0 && (len(spins) != 1 || spins[0] != sched.MaxSpins) {
			t.Errorf("%s: reads retried %v, want %d on the one connection", path, spins, sched.MaxSpins)
		}
	}
	if n := s.opened.Load(); n != 1 {
		t.Errorf("%d connections for 3 sequential requests, want 1", n)
	}
	// A read that ends in the header timeout says so as Conn.Read would:
	// the operator's log reads the same either way.
	_, _, err := do(t, newTestTransport(t, Timeouts{ResponseHeader: 10 * time.Millisecond}), "GET", s.URL+"/late", nil)
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "read" || !op.Timeout() {
		t.Errorf("late answer past the header timeout: %v, want a read timeout", err)
	}

	for name, test := range map[string]func(*testing.T){
		"KeepsConnectionsAlive":                  TestClientKeepsConnectionsAlive,
		"RetriesAConnectionTheServerClosed":      TestClientRetriesAConnectionTheServerClosed,
		"HonoursTheContext":                      TestClientHonoursTheContext,
		"KeepsTheConnectionOfAnAbandonedRequest": TestClientKeepsTheConnectionOfAnAbandonedRequest,
		"ClosingAnEndlessStreamReturnsAtOnce":    TestClientClosingAnEndlessStreamReturnsAtOnce,
		"HeaderTimeoutAfterABurst":               TestClientHeaderTimeoutAfterABurst,
		"UnderConcurrentLoad":                    TestClientUnderConcurrentLoad,
	} {
		t.Run(name, test)
	}
}

// A server that takes its time to answer is not spun for: once a wait for
// its answer has been long, the next parks at once, unbounded, until
// its answers come at once again (sched.Peer).
func TestClientParksAtOnceForASlowServer(t *testing.T) {
	defer sched.AlwaysBusy()()
	// The late answer's body is long: reads of it find bytes at once, and
	// must not make the server quick.
	long := strings.Repeat("x", 256<<10)
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/late" {
			// Long after the client's reads and bounded parks, even on a
			// loaded machine.
			time.Sleep(150 * time.Millisecond)
			io.WriteString(w, long)
			return
		}
		io.WriteString(w, "hello")
	})
	tr := newTestTransport(t, Timeouts{ResponseHeader: time.Minute})
	exchange := func(path string) *pconn {
		t.Helper()
		want := "hello"
		if path == "/late" {
			want = long
		}
		if _, body, err := do(t, tr, "GET", s.URL+path, nil); err != nil || body != want {
			t.Fatalf("%s: %d bytes, %v", path, len(body), err)
		}
		pcs, _ := idlePconns(tr)
		if len(pcs) != 1 {
			t.Fatalf("%s: %d idle connections, want 1", path, len(pcs))
		}
		return pcs[0]
	}
	if w := &exchange("/late").wait; w.Spins() != sched.MaxSpins || w.Parks() != sched.MaxBoundedParks || w.Quick() {
		t.Errorf("first late answer: %d reads retried, %d bounded parks, quick %v; want %d, %d, false",
			w.Spins(), w.Parks(), w.Quick(), sched.MaxSpins, sched.MaxBoundedParks)
	}
	if w := &exchange("/late").wait; w.Spins() != 0 || w.Parks() != 0 {
		t.Errorf("a late answer after a late one: %d reads retried, %d bounded parks; want none", w.Spins(), w.Parks())
	}
	// Answers at once again: within a few, the server is quick (a loaded
	// machine may make one wait long).
	quick := false
	for range 20 {
		if exchange("/quick").wait.Quick() {
			quick = true
			break
		}
	}
	if !quick {
		t.Error("the server was still slow after 20 answers at once")
	}
}

// While the scheduler is busy, a read of an answer's head that parks
// wakes after sched.ParkSlice to read again, twice, and keeps the header
// deadline: an answer that comes later arrives whole, one that comes too
// late still times out, and a request whose context ends while its read
// is parked ends at once.
func TestClientBoundsItsParks(t *testing.T) {
	defer sched.AlwaysBusy()()
	release := make(chan struct{})
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/late":
			// After the bounded parks, and well within the header
			// timeout, even on a loaded machine.
			time.Sleep(100 * time.Millisecond)
		case "/never":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "hello")
	})
	defer close(release)
	tr := newTestTransport(t, Timeouts{ResponseHeader: 500 * time.Millisecond})
	if _, body, err := do(t, tr, "GET", s.URL+"/late", nil); err != nil || body != "hello" {
		t.Fatalf("/late: %q, %v", body, err)
	}
	pcs, _ := idlePconns(tr)
	var parks []int
	for _, pc := range pcs {
		parks = append(parks, pc.wait.Parks())
	}
	if len(parks) != 1 || parks[0] != sched.MaxBoundedParks {
		t.Errorf("bounded parks %v, want %d on the one connection", parks, sched.MaxBoundedParks)
	}

	start := time.Now()
	_, _, err := do(t, tr, "GET", s.URL+"/never", nil)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("/never: %v, want the header timeout", err)
	} else if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("header timeout after %v, before its 500 ms", d)
	}

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/never", nil)
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Errorf("a request whose context ended: %v, want it canceled rather than timed out", err)
	}
}

// While the scheduler is not busy, a read of an answer's head that finds
// nothing parks at once, with no read retried and no bounded park: a P
// soon finds its queue empty and polls, and the reads and wake-ups would
// find nothing (package sched; issue 17).
func TestClientParksAsUsualWhileIdle(t *testing.T) {
	// A test just before may have left goroutines queued.
	for deadline := time.Now().Add(5 * time.Second); sched.Yield(); {
		if time.Now().After(deadline) {
			t.Fatal("yields still said busy after 5 s")
		}
	}
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		// After the first read, past sched.ParkSlice twice, and within
		// sched.QuickWait, so that the server stays quick: on the old
		// design its parks were bounded.
		time.Sleep(3 * time.Millisecond)
		io.WriteString(w, "hello")
	})
	tr := newTestTransport(t, Timeouts{ResponseHeader: time.Minute})
	// (A loaded machine may queue goroutines of this test enough to say
	// busy for a moment: a few waits, one of them idle, are enough.)
	for i := range 5 {
		if _, body, err := do(t, tr, "GET", s.URL, nil); err != nil || body != "hello" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
		pcs, _ := idlePconns(tr)
		if len(pcs) != 1 {
			t.Fatalf("%d idle connections, want 1", len(pcs))
		}
		if w := &pcs[0].wait; w.Spins() == 0 && w.Parks() == 0 {
			return
		}
	}
	t.Error("5 waits for an answer, the scheduler idle, each retried reads or bounded parks")
}
