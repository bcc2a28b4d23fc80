package h1

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/internal/donehook"
	"github.com/tbsphathuynh/proxy/internal/rawhttp"
	"github.com/tbsphathuynh/proxy/internal/sched"
)

// serve starts a fast-path server for h on a loopback port.
func serve(t *testing.T, h http.Handler) (*Server, string) {
	t.Helper()
	return serveHTTP(t, &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second})
}

// serveHTTP starts a fast-path server for hs on a loopback port.
func serveHTTP(t *testing.T, hs *http.Server) (*Server, string) {
	t.Helper()
	return start(t, New(hs))
}

// start serves s on a loopback listener until the test ends.
func start(t *testing.T, s *Server) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return s, ln.Addr().String()
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func readBody(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	return rawhttp.ReadAnswer(t, br, method)
}

// slowUntilGone is a handler that answers "ok" at once, except on /slow,
// where it waits for its client to leave; wait reports whether its context
// ended for that.
type slowUntilGone struct {
	arrived  chan struct{}
	canceled chan error
}

func newSlowUntilGone() *slowUntilGone {
	return &slowUntilGone{arrived: make(chan struct{}), canceled: make(chan error, 1)}
}

func (h *slowUntilGone) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/slow" {
		io.WriteString(w, "ok")
		return
	}
	close(h.arrived)
	select {
	case <-r.Context().Done():
		h.canceled <- r.Context().Err()
	case <-time.After(10 * time.Second):
		h.canceled <- nil
	}
}

func (h *slowUntilGone) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-h.canceled:
		if err != context.Canceled {
			t.Fatalf("handler's context ended with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler never learned that its client had gone")
	}
}

func TestClientGoneCancelsTheRequest(t *testing.T) {
	h := newSlowUntilGone()
	_, addr := serve(t, h)
	c, _ := dial(t, addr)
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
	<-h.arrived
	c.Close()
	h.wait(t)
}

// A request pipelined behind a slow one is read by the client-gone watch;
// its first byte must not be lost.
func TestPipelinedBehindSlowRequest(t *testing.T) {
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(3 * watchDelay)
		}
		io.WriteString(w, r.URL.Path)
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n")
	for _, want := range []string{"/slow", "/next"} {
		if _, got := readBody(t, br, "GET"); got != want {
			t.Fatalf("body %q, want %q", got, want)
		}
	}
}

func TestKeepAliveAndBodies(t *testing.T) {
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+r.Host+" "+r.Header.Get("X-A")+" "+string(b))
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "POST /a?b=1 HTTP/1.1\r\nHost: h.test\r\nx-a: 1\r\nContent-Length: 3\r\n\r\nxyz")
	if _, got := readBody(t, br, "POST"); got != "POST /a?b=1 h.test 1 xyz" {
		t.Fatalf("got %q", got)
	}
	// The body arrives after the head, in pieces.
	io.WriteString(c, "PUT /c HTTP/1.1\r\nHost: h.test\r\nContent-Length: 6\r\n\r\n")
	time.Sleep(10 * time.Millisecond)
	io.WriteString(c, "abc")
	time.Sleep(10 * time.Millisecond)
	io.WriteString(c, "def")
	res, got := readBody(t, br, "PUT")
	if got != "PUT /c h.test  abcdef" || res.Close {
		t.Fatalf("got %q (close %v)", got, res.Close)
	}
}

func TestHandsOverWhatItDoesNotServe(t *testing.T) {
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Proto+" "+strings.Join(r.TransferEncoding, ",")+" "+string(b))
	}))
	c, br := dial(t, addr)
	// A fast-path request, then a chunked one: the connection moves to
	// net/http with the bytes already read, and stays there.
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	if _, got := readBody(t, br, "GET"); got != "HTTP/1.1  " {
		t.Fatalf("got %q", got)
	}
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
	if _, got := readBody(t, br, "POST"); got != "HTTP/1.1 chunked abc" {
		t.Fatalf("got %q", got)
	}
	if _, got := readBody(t, br, "GET"); got != "HTTP/1.1  " {
		t.Fatalf("got %q", got)
	}
	// A malformed head is net/http's to answer.
	c2, br2 := dial(t, addr)
	io.WriteString(c2, "GET / HTTP/1.1\r\nHost: t\r\nBad Name: v\r\n\r\n")
	res, _ := readBody(t, br2, "GET")
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", res.StatusCode)
	}
}

func TestShutdownWaitsForRequestsAndClosesIdle(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	s, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	}))
	idle, idleBR := dial(t, addr)
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	readBody(t, idleBR, "GET")

	busy, busyBR := dial(t, addr)
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
	<-started

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// The idle connection is closed.
	if _, err := idleBR.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want EOF", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request under way", err)
	default:
	}
	close(release)
	res, body := readBody(t, busyBR, "GET")
	if body != "done" || !res.Close {
		t.Fatalf("in-flight request: body %q, close %v; want done, closed", body, res.Close)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the last request")
	}
}

func TestPanicClosesTheConnection(t *testing.T) {
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(res.Body); err == nil {
		t.Fatal("an aborted chunked response read as complete")
	}
}

// ConnContext runs once per connection, as net/http's does, whether the
// fast path serves it or hands it to net/http (an HTTP/1.0 request): every
// request of the connection sees the value it added, made from the
// client's own connection.
func TestConnContext(t *testing.T) {
	type key struct{}
	var calls atomic.Int32
	_, addr := serveHTTP(t, &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v, _ := r.Context().Value(key{}).(string)
			io.WriteString(w, v)
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			calls.Add(1)
			return context.WithValue(ctx, key{}, fmt.Sprintf("%T", c))
		},
	})
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		calls.Store(0)
		c, br := dial(t, addr)
		for range 2 {
			io.WriteString(c, "GET / "+proto+"\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")
			if _, body := readBody(t, br, "GET"); body != "*net.TCPConn" {
				t.Errorf("%s: handler saw %q, want what ConnContext made of the client's connection", proto, body)
			}
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("%s: ConnContext ran %d times for one connection", proto, n)
		}
	}
}

// A connection's context that ConnContext made able to end by itself ends
// the request's context, and runs what donehook.After registered on it,
// as context.AfterFunc would.
func TestHookFiresWhenConnContextEnds(t *testing.T) {
	parent, endConns := context.WithCancel(context.Background())
	defer endConns()
	ran, registered := make(chan struct{}), make(chan struct{})
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f := func() { close(ran) }
			reg := donehook.After(r.Context(), &f)
			close(registered)
			<-r.Context().Done()
			select {
			case <-ran:
			case <-time.After(5 * time.Second):
			}
			reg.Stop()
		}),
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			ctx, cancel := context.WithCancel(ctx)
			context.AfterFunc(parent, cancel)
			return ctx
		},
	}
	_, addr := serveHTTP(t, hs)

	c, _ := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	<-registered
	endConns()
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection's context ended, and what donehook.After registered never ran")
	}
}

// A kept-alive connection is closed once idle for IdleTimeout, and not
// much earlier, even after a burst of requests (whose waits reuse their
// deadlines rather than set one each): for a timeout the wait moves to a
// new goroutine at (400 ms) and one it does not (80 ms).
func TestIdleTimeout(t *testing.T) {
	for _, idle := range []time.Duration{80 * time.Millisecond, 400 * time.Millisecond} {
		_, addr := serveHTTP(t, &http.Server{
			Handler:     http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
			IdleTimeout: idle,
		})
		c, br := dial(t, addr)
		for i := range 100 {
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
				t.Fatalf("idle %v: request %d: %v", idle, i, err)
			}
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("idle %v: request %d: %v", idle, i, err)
			}
			io.Copy(io.Discard, res.Body)
			time.Sleep(time.Millisecond)
		}
		last := time.Now()
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("idle %v: read on the idle connection: %v, want EOF", idle, err)
		}
		// The wait may end up to an eighth early, at most waitDeadlineSlack;
		// and it began as the server sent the last answer, a moment before
		// last, the client's reading of it (a millisecond or so under the
		// race detector). A deadline never updated after the burst would
		// end the wait a whole burst early.
		const skew = 5 * time.Millisecond
		if d, least := time.Since(last), idle-min(idle/8, waitDeadlineSlack)-skew; d < least {
			t.Errorf("closed after %v idle, want at least %v", d, least)
		}
	}
}

// wait is how a connection waited for one request: the reads it retried
// after yielding, its bounded parks, and whether it took its client for
// one that sends its requests at once.
type wait struct {
	spins, parks int
	quick        bool
}

// waitsAfter serves a request on one connection after each pause, with a
// handler that reports how the connection waited for each.
func waitsAfter(t *testing.T, pauses ...time.Duration) []wait {
	t.Helper()
	var s *Server
	got := make(chan wait, len(pauses))
	first := true
	s, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The handler runs on its connection's goroutine, the one that
		// counts.
		s.mu.Lock()
		for c := range s.conns {
			got <- wait{c.wait.Spins(), c.wait.Parks(), c.wait.Quick()}
			if first {
				// The first wait, from the server's first read to the
				// client's write after dialing, may be long on a loaded
				// machine: the waits measured start with a quick client.
				c.wait.Peer = sched.Peer{}
				first = false
			}
		}
		s.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	c, br := dial(t, addr)
	var waits []wait
	for i, pause := range pauses {
		time.Sleep(pause)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, body := readBody(t, br, "GET"); body != "ok" {
			t.Fatalf("request %d: %q", i, body)
		}
		waits = append(waits, <-got)
	}
	return waits
}

// waits serves two requests on one connection, the second long after the
// reads that find nothing and the bounded parks are over, and reports how
// the connection waited for the second.
func waits(t *testing.T) (spins, parks int) {
	w := waitsAfter(t, 0, 50*time.Millisecond)[1]
	return w.spins, w.parks
}

// A connection whose next request has not come yet parks, but wakes after
// sched.ParkSlice to read again, twice: the scheduler may have turned busy
// meanwhile, and then the poller would not have run for it.
func TestBoundedParks(t *testing.T) {
	// A test just before may have left the scheduler busy for a moment
	// (sched's busy window).
	for deadline := time.Now().Add(5 * time.Second); sched.Yield(); {
		if time.Now().After(deadline) {
			t.Fatal("yields still said busy after 5 s")
		}
	}
	// (A loaded machine may hold up a yield enough to say busy, and then
	// the connection spins first: only the parks are certain.)
	if _, parks := waits(t); parks != sched.MaxBoundedParks {
		t.Errorf("%d bounded parks, want %d", parks, sched.MaxBoundedParks)
	}
}

// A client that pauses between requests is not spun for: once a wait for
// it has been long, the next parks at once, unbounded, until its
// requests come at once again (sched.Peer).
func TestClientThatPausesIsNotSpunFor(t *testing.T) {
	defer sched.AlwaysBusy()()
	pause := 50 * time.Millisecond
	waits := waitsAfter(t, 0, pause, pause)
	if w := waits[1]; w.spins != sched.MaxSpins || w.parks != sched.MaxBoundedParks || w.quick {
		t.Errorf("first pause: %+v, want %d reads retried, %d bounded parks, the client slow after it", w, sched.MaxSpins, sched.MaxBoundedParks)
	}
	if w := waits[2]; w.spins != 0 || w.parks != 0 {
		t.Errorf("a pause after a pause: %+v, want no reads retried and no bounded park", w)
	}
	// Requests at once again: within a few, the client is quick (a
	// loaded machine may make one wait long).
	quick := false
	for _, w := range waitsAfter(t, append([]time.Duration{pause, pause}, make([]time.Duration, 20)...)...)[2:] {
		quick = quick || w.quick
	}
	if !quick {
		t.Error("the client was still slow after 20 requests sent at once")
	}
}

// Under load a connection whose next request has not come yet yields and
// reads again rather than parking (package sched). A request that comes
// after those reads is still served, and every behaviour of a connection
// holds with reads that spin.
func TestServesWhileTheSchedulerIsBusy(t *testing.T) {
	defer sched.AlwaysBusy()()
	if spins, parks := waits(t); spins != sched.MaxSpins || parks != sched.MaxBoundedParks {
		t.Errorf("busy scheduler: %d reads retried and %d bounded parks, want %d and %d", spins, parks, sched.MaxSpins, sched.MaxBoundedParks)
	}

	// Idle past shrinkAfter while its reads still spin, the wait moves to
	// a new goroutine: the connection stays open and serves the next
	// request. On one P beside a goroutine that runs 10 ms between yields,
	// the spins last longer than shrinkAfter.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	stop := make(chan struct{})
	hogged := make(chan struct{})
	go func() {
		defer close(hogged)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for start := time.Now(); time.Since(start) < 10*time.Millisecond; {
			}
			runtime.Gosched()
		}
	}()
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	c, br := dial(t, addr)
	for i := range 2 {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, body := readBody(t, br, "GET"); body != "ok" {
			t.Fatalf("request %d after an idle wait: %q", i, body)
		}
		time.Sleep(2 * shrinkAfter)
	}
	close(stop)
	<-hogged

	for name, test := range map[string]func(*testing.T){
		"ClientGoneCancelsTheRequest":           TestClientGoneCancelsTheRequest,
		"PipelinedBehindSlowRequest":            TestPipelinedBehindSlowRequest,
		"KeepAliveAndBodies":                    TestKeepAliveAndBodies,
		"ShutdownWaitsForRequestsAndClosesIdle": TestShutdownWaitsForRequestsAndClosesIdle,
		"IdleTimeout":                           TestIdleTimeout,
		"ClientGoneOnAKeptAliveConnection":      TestClientGoneOnAKeptAliveConnection,
	} {
		t.Run(name, test)
	}
}
