package forward

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tbsphathuynh/proxy/internal/reqinfo"
	"github.com/tbsphathuynh/proxy/upstream"
)

// leavingWriter is a client that goes away after the first write of the
// answer's body: every later write fails. It takes the answer's head as
// raw lines, as h1's writer does for the direct lane.
type leavingWriter struct {
	h      http.Header
	lines  string
	writes int
}

func (w *leavingWriter) SetRawHeader(code int, lines []byte, length int64, typ, encoding, date bool) bool {
	w.lines = string(lines)
	return true
}

func (w *leavingWriter) Header() http.Header { return w.h }
func (w *leavingWriter) WriteHeader(int)     {}
func (w *leavingWriter) Write(b []byte) (int, error) {
	if w.writes++; w.writes > 1 {
		return 0, errors.New("client gone")
	}
	return len(b), nil
}

// A client that leaves while the direct lane relays its answer gives the
// server's slot back at once and leaves the rest to a rescue, which reads
// it through the answer's memory and then pools the connection. The lane reuses an answer's memory once served,
// but not this one: the requests served meanwhile get their own answers,
// and the rescued connection comes back whole.
func TestDirectRescueKeepsItsAnswer(t *testing.T) {
	chunk := strings.Repeat("x", 10000)
	rest := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Conn", r.RemoteAddr)
		if r.URL.Path != "/big" {
			io.WriteString(w, "ok "+r.URL.Path)
			return
		}
		w.Header().Set("Content-Length", "30000")
		io.WriteString(w, chunk+chunk)
		w.(http.Flusher).Flush()
		<-rest
		io.WriteString(w, chunk)
	}))
	defer be.Close()
	rt, pool, tr := directRoute(t, be.URL)
	serve := func(w http.ResponseWriter, path string) { serveDirect(rt, w, context.Background(), "GET", path) }

	left := &leavingWriter{h: make(http.Header)}
	serve(left, "/big")
	big := ""
	if _, v, ok := strings.Cut(left.lines, "X-Conn: "); ok {
		big, _, _ = strings.Cut(v, "\r\n")
	}
	if big == "" || left.writes < 2 {
		t.Fatalf("the client did not leave mid-answer (%d writes, answer from %q)", left.writes, big)
	}
	if n := pool.Available()[0].State.InFlight(); n != 0 {
		t.Errorf("%d requests in flight on the server after the client left, want 0", n)
	}
	// The rescue now waits for the rest, for up to half a second; the
	// requests meanwhile go over another connection.
	for i := range 5 {
		w := httptest.NewRecorder()
		path := "/quick/" + string(rune('a'+i))
		serve(w, path)
		if w.Body.String() != "ok "+path {
			t.Fatalf("%s: %q", path, w.Body.String())
		}
	}
	close(rest)
	waitPooled(t, tr, big)
	// On top of the pool, it carries the next request, whole.
	w := httptest.NewRecorder()
	serve(w, "/after")
	if w.Body.String() != "ok /after" || w.Header().Get("X-Conn") != big {
		t.Errorf("/after: %q from %q, want %q from the rescued connection %q", w.Body.String(), w.Header().Get("X-Conn"), "ok /after", big)
	}
}

// A client that leaves before its answer comes leaves the answer to a
// rescue that saves the server's connection. The lane reuses a request's
// memory once it is served, but not this one's, which the rescue still
// reads: here a HEAD, whose answer the rescue frames by its method
// (Content-Length but no body). Had the requests served meanwhile reused
// it, the rescue would wait for a body that never comes and lose the
// connection.
func TestDirectRescueKeepsItsRequest(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan string, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Conn", r.RemoteAddr)
		if r.URL.Path == "/slow" {
			w.Header().Set("Content-Length", "8")
			arrived <- r.RemoteAddr
			<-release
			w.WriteHeader(http.StatusOK)
			return
		}
		io.WriteString(w, "ok "+r.URL.Path)
	}))
	defer be.Close()
	rt, _, tr := directRoute(t, be.URL)

	ctx, leave := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		serveDirect(rt, httptest.NewRecorder(), ctx, "HEAD", "/slow")
	}()
	slow := <-arrived
	leave()
	<-served
	// The rescue now waits for the answer, for up to half a second.
	for i := range 5 {
		w := httptest.NewRecorder()
		path := "/quick/" + string(rune('a'+i))
		serveDirect(rt, w, context.Background(), "GET", path)
		if w.Body.String() != "ok "+path {
			t.Fatalf("%s: %q", path, w.Body.String())
		}
	}
	close(release)
	waitPooled(t, tr, slow)
}

// directRoute is a route to the server at rawURL, through this package's
// client.
func directRoute(t *testing.T, rawURL string) (*Route, *upstream.Pool, *http.Transport) {
	u, _ := url.Parse(rawURL)
	reg := upstream.NewRegistry()
	pool := upstream.NewPool("test", []*upstream.Server{{Name: "s1", URL: u, Weight: 1, State: reg.State("s1")}})
	tr := newTestTransport(t, Timeouts{})
	up := &Upstream{Name: "test", Pool: pool, Picker: first{}, Transport: tr}
	return NewRoute("r", up, "", slog.New(slog.NewTextHandler(io.Discard, nil))), pool, tr
}

// serveDirect serves a request of the direct lane for path on rt, in ctx.
func serveDirect(rt *Route, w http.ResponseWriter, ctx context.Context, method, path string) {
	info := &reqinfo.Info{Head: []byte(method + " " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")}
	r := (&http.Request{Method: method, URL: &url.URL{}}).WithContext(reqinfo.With(ctx, info))
	rt.ServeDirect(w, r, info)
}

// waitPooled waits for the connection the server saw from addr to be back
// in tr's pool, where a rescue puts it on its own goroutine.
func waitPooled(t *testing.T, tr *http.Transport, addr string) {
	t.Helper()
	waitFor(t, "the rescued connection back in the pool", func() bool {
		pcs, _ := idlePconns(tr)
		for _, pc := range pcs {
			if pc.LocalAddr().String() == addr {
				return true
			}
		}
		return false
	})
}
