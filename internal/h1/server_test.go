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
	started, watched := make(chan struct{}), make(chan struct{}, 1)
	s := New(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			awaitWatch(t, watched)
		}
		io.WriteString(w, r.Method+" "+r.URL.Path)
	})})
	s.watchRead = readByte(watched)
	_, addr := start(t, s)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
	<-started
	// After the slow request was read, so that the watch reads its first
	// byte rather than the slow request's read taking it.
	io.WriteString(c, "GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
	for _, want := range []string{"GET /slow", "GET /next"} {
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

// A kept-alive connection is closed once idle for IdleTimeout, never
// before, even after a burst of requests (whose waits reuse their
// deadlines rather than set one each, an earlier one): for a timeout the
// wait moves to a new goroutine at (400 ms) and one it does not (80 ms).
// The bounds hold by causality alone, whatever the machine's load: the
// server's idle wait starts after it has the last request, so after the
// client began to send it.
func TestIdleTimeout(t *testing.T) {
	for _, tc := range []struct {
		idle   time.Duration
		rounds int
	}{
		// A reused deadline is a few milliseconds early on most rounds,
		// depending on where the burst ends: three rounds catch one.
		{80 * time.Millisecond, 3},
		{400 * time.Millisecond, 1},
	} {
		_, addr := serveHTTP(t, &http.Server{
			Handler:     http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
			IdleTimeout: tc.idle,
		})
		for range tc.rounds {
			c, br, sent := idleBurst(t, addr, tc.idle)
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("idle %v: read on the idle connection: %v, want EOF", tc.idle, err)
			}
			if d := time.Since(sent); d < tc.idle {
				t.Errorf("idle %v: closed %v after the last request was sent", tc.idle, d)
			}
			c.Close()
		}
	}
}

// idleBurst sends 30 requests a millisecond apart on a new connection to
// addr, which closes connections idle for idle, and returns the
// connection and when the last request began to be sent. A connection
// the server closes in the burst fails the test when the client had not
// been quiet for half of idle (the kernel may deliver a write late); one
// that the client itself held up past idle (a loaded machine) is the
// server's right, and the burst starts again on a new connection.
func idleBurst(t *testing.T, addr string, idle time.Duration) (net.Conn, *bufio.Reader, time.Time) {
	t.Helper()
	for try := 1; ; try++ {
		c, br := dial(t, addr)
		var sent time.Time
		i := 0
		for ; i < 30; i++ {
			last := sent
			sent = time.Now()
			_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
			quiet := time.Since(last)
			if err == nil {
				var res *http.Response
				if res, err = http.ReadResponse(br, nil); err == nil {
					_, err = io.Copy(io.Discard, res.Body)
				}
			}
			if err != nil {
				if i == 0 || quiet < idle/2 {
					t.Fatalf("idle %v: request %d, %v after the last began: %v", idle, i, quiet, err)
				}
				t.Logf("idle %v: the client was held up %v before request %d, and the server closed: starting again", idle, quiet, i)
				break
			}
			time.Sleep(time.Millisecond)
		}
		if i == 30 {
			return c, br, sent
		}
		c.Close()
		if try == 20 {
			t.Fatalf("idle %v: the client was held up past the timeout in %d bursts", idle, try)
		}
	}
}

// A request that came while the connection served the one before is
// served even when the wait for it starts past its deadline, as it does
// when the connection's goroutine runs late on a loaded machine (here
// with an idle timeout of 1 ns): a read past its deadline fails before it
// looks at the socket, and the connection closed with the request unread,
// with a reset.
func TestRequestThatCameInTimeIsServedLate(t *testing.T) {
	second := make(chan struct{})
	var s *Server
	s, addr := serveHTTP(t, &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/first" {
				<-second
			}
			io.WriteString(w, r.URL.Path)
		}),
		IdleTimeout: time.Nanosecond,
	})
	c, br := dial(t, addr)
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
	// Once the first request is being served, the second is sent, and
	// the first answered only when the second is in the server's socket.
	waitUntil(t, "the first request served", func() bool { return len(conns(s)) == 1 && conns(s)[0].state.Load() == stateActive })
	io.WriteString(c, "GET /second HTTP/1.1\r\nHost: h\r\n\r\n")
	waitUntil(t, "the second request in the server's socket", func() bool { return socketHolds(conns(s)[0]) })
	close(second)
	for _, want := range []string{"/first", "/second"} {
		if _, body := readBody(t, br, "GET"); body != want {
			t.Fatalf("answer %q, want %q", body, want)
		}
	}
}

// conns returns s's connections.
func conns(s *Server) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cs []*conn
	for c := range s.conns {
		cs = append(cs, c)
	}
	return cs
}

// waitUntil polls cond until it holds, and fails the test if it does not
// within 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
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
	// The pause leaves a loaded machine time for the reads and parks, and
	// ends before shrinkAfter.
	w := waitsAfter(t, 0, 90*time.Millisecond)[1]
	return w.spins, w.parks
}

// While the scheduler is not busy, a connection whose next request has
// not come yet parks at once, with no read retried and no bounded park: a
// P soon finds its queue empty and polls, and the reads and wake-ups
// would find nothing (package sched; issue 17).
func TestParksAsUsualWhileIdle(t *testing.T) {
	// A test just before may have left goroutines queued.
	for deadline := time.Now().Add(5 * time.Second); sched.Yield(); {
		if time.Now().After(deadline) {
			t.Fatal("yields still said busy after 5 s")
		}
	}
	// (A loaded machine may queue goroutines of this test enough to say
	// busy for a moment: a few waits, one of them idle, are enough.)
	for range 5 {
		if spins, parks := waits(t); spins == 0 && parks == 0 {
			return
		}
	}
	t.Error("5 waits of an idle connection each retried reads or bounded parks")
}

// A client that pauses between requests is not spun for: once a wait for
// it has been long, the next parks at once, unbounded, until its
// requests come at once again (sched.Peer).
func TestClientThatPausesIsNotSpunFor(t *testing.T) {
	defer sched.AlwaysBusy()()
	pause := 90 * time.Millisecond // as in waits
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
	// the spins last longer than shrinkAfter. (Only this part runs on one
	// P: the behaviours below are for a busy scheduler, not a starved
	// client.)
	func() {
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
		defer func() {
			close(stop)
			<-hogged
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
	}()

	for name, test := range map[string]func(*testing.T){
		"ClientGoneCancelsTheRequest":           TestClientGoneCancelsTheRequest,
		"PipelinedBehindSlowRequest":            TestPipelinedBehindSlowRequest,
		"KeepAliveAndBodies":                    TestKeepAliveAndBodies,
		"ShutdownWaitsForRequestsAndClosesIdle": TestShutdownWaitsForRequestsAndClosesIdle,
		"IdleTimeout":                           TestIdleTimeout,
		"RequestThatCameInTimeIsServedLate":     TestRequestThatCameInTimeIsServedLate,
		"ClientGoneOnAKeptAliveConnection":      TestClientGoneOnAKeptAliveConnection,
	} {
		t.Run(name, test)
	}
}
