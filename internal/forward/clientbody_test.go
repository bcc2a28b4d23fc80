package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

func TestStatusForBlamesTheClientsBody(t *testing.T) {
	body := func(err error) error {
		// As net/http's transport reports a body it could not read.
		return fmt.Errorf("net/http: HTTP/1.x transport connection broken: %w", &clientBodyError{err})
	}
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"malformed chunked", body(errors.New("invalid byte in chunk length")), 400},
		{"cut short", body(io.ErrUnexpectedEOF), 400},
		{"client too slow", body(&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}), 408},
		{"client reset", body(&net.OpError{Op: "read", Err: syscall.ECONNRESET}), 499},
		{"client connection closed", body(net.ErrClosed), 499},
		// The server's own failures keep their statuses.
		{"server cut its answer short", io.ErrUnexpectedEOF, 502},
		{"server too slow", errPerTryTimeout, 504},
		{"server refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, 502},
	}
	for _, c := range cases {
		if got := StatusFor(c.err); got != c.want {
			t.Errorf("%s: StatusFor = %d, want %d", c.name, got, c.want)
		}
	}
}

// countingObserver counts the attempts it is told about.
type countingObserver struct {
	mu    sync.Mutex
	calls []error
}

func (o *countingObserver) Observe(_ *upstream.Server, _ int, err error, _ time.Duration) {
	o.mu.Lock()
	o.calls = append(o.calls, err)
	o.mu.Unlock()
}

// bodyReader is a transport that reads the request body as net/http's
// does, and fails as it does when the body fails, or with what it sees
// next when then is set (the connection it tore down).
type bodyReader struct {
	mu    sync.Mutex
	tries int
	then  error
}

func (b *bodyReader) RoundTrip(r *http.Request) (*http.Response, error) {
	b.mu.Lock()
	b.tries++
	b.mu.Unlock()
	if r.Body != nil {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			if b.then != nil {
				return nil, b.then
			}
			return nil, err
		}
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

// brokenBody gives good bytes, then fails.
type brokenBody struct {
	good string
	err  error
}

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.good != "" {
		n := copy(p, b.good)
		b.good = b.good[n:]
		return n, nil
	}
	return 0, b.err
}

func (b *brokenBody) Close() error { return nil }

func twoServerRoute(t *testing.T, rt http.RoundTripper, obs Observer, retry RetryPolicy) *Route {
	t.Helper()
	reg := upstream.NewRegistry()
	var servers []*upstream.Server
	for _, name := range []string{"s1", "s2"} {
		u, _ := url.Parse("http://127.0.0.1:1")
		servers = append(servers, &upstream.Server{Name: name, URL: u, Weight: 1, State: reg.State(name)})
	}
	up := &Upstream{Name: "test", Pool: upstream.NewPool("test", servers), Picker: first{}, Transport: rt, Observer: obs, Retry: retry}
	return NewRoute("r", up, "", slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// A body that fails while the transport sends it is answered 400 with the
// connection closed, tried on no other server, and reported to no
// observer, whatever error the transport makes of it.
func TestBrokenBodyIsNeitherRetriedNorObserved(t *testing.T) {
	for _, c := range []struct {
		name  string
		then  error
		retry RetryPolicy
	}{
		{"body error as the transport returns it", nil, RetryPolicy{Attempts: 1}},
		{"the transport reports its torn connection", errors.New("write: broken pipe"), RetryPolicy{Attempts: 1}},
		{"the transport reports the client's context", context.Canceled, RetryPolicy{Attempts: 1}},
		{"body read for replay", nil, RetryPolicy{Attempts: 1, MaxBodyBytes: 1 << 10}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := &bodyReader{then: c.then}
			obs := &countingObserver{}
			rt := twoServerRoute(t, tr, obs, c.retry)
			r := httptest.NewRequest("PUT", "http://example.com/x", nil)
			r.Body = &brokenBody{good: "abc", err: io.ErrUnexpectedEOF}
			r.ContentLength = 100
			w := httptest.NewRecorder()
			rt.ServeHTTP(w, r)
			if w.Code != 400 || w.Header().Get("Connection") != "close" {
				t.Errorf("answered %d, Connection %q; want 400 and close", w.Code, w.Header().Get("Connection"))
			}
			if strings.Contains(w.Body.String(), "unexpected EOF") {
				t.Errorf("the error leaked to the client: %q", w.Body.String())
			}
			want := 1
			if c.retry.MaxBodyBytes > 0 {
				want = 0 // refused before any server was contacted
			}
			if tr.tries != want {
				t.Errorf("%d attempts, want %d: a broken body is never tried on another server", tr.tries, want)
			}
			if len(obs.calls) != 0 {
				t.Errorf("observer told %v; a broken body says nothing about the server", obs.calls)
			}
			for _, s := range rt.up.Pool.Servers {
				if n := s.InFlight(); n != 0 {
					t.Errorf("server %s left with %d in flight", s.Name, n)
				}
			}
		})
	}
}

// A chunked body whose first line is already broken is refused before any
// server is contacted; one that arrives late still goes through whole.
func TestChunkedBodyProbedBeforeContact(t *testing.T) {
	t.Run("broken first chunk", func(t *testing.T) {
		tr := &bodyReader{}
		rt := twoServerRoute(t, tr, &countingObserver{}, RetryPolicy{})
		r := httptest.NewRequest("POST", "http://example.com/x", nil)
		r.Body = &brokenBody{err: errors.New("invalid byte in chunk length")}
		r.ContentLength, r.TransferEncoding = -1, []string{"chunked"}
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, r)
		if w.Code != 400 || tr.tries != 0 {
			t.Errorf("answered %d after %d attempts; want 400 with no server contacted", w.Code, tr.tries)
		}
	})
	t.Run("late body", func(t *testing.T) {
		pr, pw := io.Pipe()
		got := make(chan string, 1)
		rt := twoServerRoute(t, roundTripFunc(func(r *http.Request) (*http.Response, error) {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				return nil, err
			}
			got <- string(b)
			return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
		}), &countingObserver{}, RetryPolicy{})
		r := httptest.NewRequest("POST", "http://example.com/x", nil)
		r.Body = pr
		r.ContentLength, r.TransferEncoding = -1, []string{"chunked"}
		done := make(chan int)
		go func() {
			w := httptest.NewRecorder()
			rt.ServeHTTP(w, r)
			done <- w.Code
		}()
		// Whether the probe's read finds the first part or gives up
		// waiting first, the server gets the body whole.
		io.WriteString(pw, "first,")
		io.WriteString(pw, "second")
		pw.Close()
		if code := <-done; code != 200 {
			t.Errorf("answered %d, want 200", code)
		}
		if b := <-got; b != "first,second" {
			t.Errorf("server got %q, want the whole body", b)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// cancelingTransport reports every exchange canceled, as http.Transport
// now and then does while reloads run beside it, though the client is
// still there.
type cancelingTransport struct{ tries atomic.Int64 }

func (c *cancelingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	c.tries.Add(1)
	return nil, context.Canceled
}

// An exchange the transport calls canceled while the client is still
// there is a failure to reach the server, answered 502 and retried where
// retries allow, never the client's 499: net/http would end a handler
// that wrote nothing with an empty 200, a whole answer that is not one.
// Nor is it held against the server.
func TestTransportCancelWithTheClientThereIs502(t *testing.T) {
	tr := &cancelingTransport{}
	obs := &countingObserver{}
	route := twoServerRoute(t, tr, obs, RetryPolicy{Attempts: 1})
	front := httptest.NewServer(route)
	defer front.Close()
	res, err := http.Get(front.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway || len(body) == 0 {
		t.Errorf("answer %d %q, want 502 with its text", res.StatusCode, body)
	}
	if n := tr.tries.Load(); n != 2 {
		t.Errorf("%d tries, want 2: the retry goes to the other server", n)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.calls) != 0 {
		t.Errorf("observer told of %v; the server did nothing wrong", obs.calls)
	}
}
