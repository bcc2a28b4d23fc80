package h1

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// hookListener accepts connections whose raw reads, the fast path's reads,
// call onRead when they start (start true) and when they return.
type hookListener struct {
	net.Listener
	onRead func(start bool, err error)
}

func (l *hookListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &hookConn{TCPConn: c.(*net.TCPConn), onRead: l.onRead}, nil
}

type hookConn struct {
	*net.TCPConn
	onRead func(start bool, err error)
}

func (c *hookConn) SyscallConn() (syscall.RawConn, error) {
	rc, err := c.TCPConn.SyscallConn()
	return hookRaw{rc, c.onRead}, err
}

type hookRaw struct {
	syscall.RawConn
	onRead func(start bool, err error)
}

func (r hookRaw) Read(f func(uintptr) bool) error {
	r.onRead(true, nil)
	err := r.RawConn.Read(f)
	r.onRead(false, err)
	return err
}

// serveHooked is serve on a hookListener; onRead may use the server
// through *sp.
func serveHooked(t *testing.T, h http.Handler, onRead func(start bool, err error)) (s *Server, sp **Server, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sp = new(*Server)
	s = New(&http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second})
	*sp = s
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(&hookListener{ln, onRead})
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return s, sp, ln.Addr().String()
}

// A request whose bytes were read just as Shutdown closed its idle
// connection must not be served: nobody can receive the answer, and the
// client, which saw its connection closed, may send it again.
func TestShutdownClosingIdleConnectionServesNothing(t *testing.T) {
	var served atomic.Int32
	var armed atomic.Bool
	var s *Server
	_, sp, addr := serveHooked(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		io.WriteString(w, "ok")
	}), func(start bool, err error) {
		// Shutdown's first look at the connections lands just after
		// the read that brought the second request.
		if !start && err == nil && armed.CompareAndSwap(true, false) {
			s.begin()
			s.closeIdle()
		}
	})
	s = *sp
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	readBody(t, br, "GET")
	armed.Store(true)
	io.WriteString(c, "GET /2 HTTP/1.1\r\nHost: t\r\n\r\n")
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the connection Shutdown closed answered")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := served.Load(); n != 1 {
		t.Fatalf("%d requests served, want 1: the second ran on a closed connection", n)
	}
}

// A connection just accepted may have its first request on the way:
// Shutdown leaves it a while, as net/http leaves a new connection five
// seconds, and the request is answered, with Connection: close. (net/http
// would close it unanswered once read: a client does not send a request
// again after its fresh connection failed.)
func TestShutdownServesTheFirstRequestOfANewConnection(t *testing.T) {
	waiting := make(chan struct{}, 1)
	_, sp, addr := serveHooked(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), func(start bool, err error) {
		if start {
			select {
			case waiting <- struct{}{}:
			default:
			}
		}
	})
	s := *sp
	c, br := dial(t, addr)
	<-waiting // accepted, tracked, and reading
	s.begin()
	s.closeIdle()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	res, body := readBody(t, br, "GET")
	if body != "ok" || !res.Close {
		t.Fatalf("body %q, close %v; want ok, closed", body, res.Close)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// The client-gone watch must outlive the read deadline of the wait before
// the request: on a kept-alive connection that deadline is shrinkAfter
// from the start of the wait, already past when the watch starts.
func TestClientGoneOnAKeptAliveConnection(t *testing.T) {
	h := newSlowUntilGone()
	_, addr := serve(t, h)
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	readBody(t, br, "GET")
	// Sent at once, so that it comes within shrinkAfter.
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
	<-h.arrived
	c.Close()
	h.wait(t)
}

// A request body read after its handler returned (by a transport still
// sending it) must read as closed, and never as the body of a later
// request that took over the pooled request state.
func TestBodyReadAfterTheHandlerReturned(t *testing.T) {
	kept := make(chan io.Reader, 1)
	arrived := make(chan struct{})
	release := make(chan struct{})
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/keep" {
			kept <- r.Body
			io.WriteString(w, "kept")
			return
		}
		close(arrived)
		<-release
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "POST /keep HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
	if _, got := readBody(t, br, "POST"); got != "kept" {
		t.Fatalf("got %q", got)
	}
	stale := <-kept
	io.WriteString(c, "POST /next HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nsecret")
	<-arrived
	buf := make([]byte, 16)
	n, err := stale.Read(buf)
	close(release)
	if n != 0 || !errors.Is(err, http.ErrBodyReadAfterClose) {
		t.Errorf("read after the handler returned: %q, %v; want nothing, %v", buf[:n], err, http.ErrBodyReadAfterClose)
	}
	if _, got := readBody(t, br, "POST"); got != "secret" {
		t.Fatalf("next request's body %q, want %q", got, "secret")
	}
}

// A connection that waits idle keeps no request's context: the last
// request's ends, as net/http ends each one once it is answered, and the
// next request on the connection runs in a new one. The context is not
// kept for the wait (startCtx says why).
func TestIdleConnectionEndsItsRequestsContext(t *testing.T) {
	ctxs := make(chan context.Context, 2)
	_, addr := serveHTTP(t, &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := r.Context().Err(); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			ctxs <- r.Context()
			io.WriteString(w, "ok")
		}),
		IdleTimeout: 30 * time.Second,
		// A context of the connection's own that can end: the hooks of a
		// request's context must follow the request's, not the last one's.
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			ctx, cancel := context.WithCancel(ctx)
			t.Cleanup(cancel)
			return ctx
		},
	})
	c, br := dial(t, addr)
	get := func() context.Context {
		t.Helper()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d (%s), want 200", res.StatusCode, b)
		}
		return <-ctxs
	}
	first := get()
	select {
	case <-first.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the answered request's context did not end while the connection waited idle")
	}
	second := get()
	if second.Err() != nil {
		t.Errorf("the next request's context ended with its connection still open: %v", second.Err())
	}
	c.Close()
	select {
	case <-second.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the request's context did not end when its connection closed")
	}
}
