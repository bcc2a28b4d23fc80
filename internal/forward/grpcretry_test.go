package forward

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// callServers answers gRPC calls as two servers in turn: the first with
// first, the second with grpc-status 0; it keeps the stream each got.
type callServers struct {
	mu     sync.Mutex
	first  func() *http.Response
	bodies []string
}

func (c *callServers) RoundTrip(r *http.Request) (*http.Response, error) {
	b, err := io.ReadAll(r.Body) // sends the whole stream, as a transport would
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.bodies = append(c.bodies, string(b))
	n := len(c.bodies)
	c.mu.Unlock()
	if n == 1 {
		res := c.first()
		res.Request = r
		return res, nil
	}
	return grpcAnswer(http.Header{"Grpc-Status": {"0"}}, "", nil), nil
}

func grpcAnswer(h http.Header, body string, trailer http.Header) *http.Response {
	h.Set("Content-Type", "application/grpc")
	return &http.Response{StatusCode: 200, ProtoMajor: 2, Header: h, Trailer: trailer, ContentLength: -1,
		Body: io.NopCloser(strings.NewReader(body))}
}

// A call the server ended with UNAVAILABLE before any message goes to the
// other server with the same stream, when retry_on lists it, after the
// server's pushback; not when the pushback says no, would outlast the
// call's deadline, or a message came first, or the stream was too long
// to keep.
func TestGRPCRetryOnStatus(t *testing.T) {
	msg := "\x00\x00\x00\x00\x03abc"
	unavailable := func(pushback ...string) func() *http.Response {
		return func() *http.Response {
			h := http.Header{"Grpc-Status": {"14"}}
			if len(pushback) > 0 {
				h["Grpc-Retry-Pushback-Ms"] = pushback
			}
			return grpcAnswer(h, "", nil)
		}
	}
	for _, tc := range []struct {
		name     string
		first    func() *http.Response
		onStatus []int
		timeout  string // the call's grpc-timeout
		body     string
		tries    int
		waits    []time.Duration
		status   string
	}{
		{"trailers-only, no pushback", unavailable(), []int{14}, "", msg, 2, nil, "0"},
		{"pushback waited", unavailable("250"), []int{14}, "", msg, 2, []time.Duration{250 * time.Millisecond}, "0"},
		{"pushback zero", unavailable("0"), []int{14}, "", msg, 2, []time.Duration{0}, "0"},
		{"pushback within the deadline", unavailable("250"), []int{14}, "10S", msg, 2, []time.Duration{250 * time.Millisecond}, "0"},
		{"pushback past the deadline", unavailable("5000"), []int{14}, "1S", msg, 1, nil, "14"},
		{"negative pushback", unavailable("-1"), []int{14}, "", msg, 1, nil, "14"},
		{"malformed pushback", unavailable("soon"), []int{14}, "", msg, 1, nil, "14"},
		{"retry_on not set", unavailable(), nil, "", msg, 1, nil, "14"},
		{"another status", func() *http.Response { return grpcAnswer(http.Header{"Grpc-Status": {"13"}}, "", nil) }, []int{14}, "", msg, 1, nil, "13"},
		{"stream too long to keep", unavailable(), []int{14}, "", strings.Repeat("x", 65), 1, nil, "14"},
		{"status in trailers, no message", func() *http.Response {
			return grpcAnswer(http.Header{}, "", http.Header{"Grpc-Status": {"14"}})
		}, []int{14}, "", msg, 2, nil, "0"},
		{"status in trailers after a message", func() *http.Response {
			return grpcAnswer(http.Header{}, msg, http.Header{"Grpc-Status": {"14"}})
		}, []int{14}, "", msg, 1, nil, "14"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &callServers{first: tc.first}
			rt := twoServerRoute(t, srv, nil, RetryPolicy{Attempts: 1, OnGRPCStatus: tc.onStatus, MaxBodyBytes: 64})
			var waits []time.Duration
			rt.up.pause = func(_ context.Context, d time.Duration) error {
				waits = append(waits, d)
				return nil
			}
			r := httptest.NewRequest("POST", "http://example.com/pkg.Svc/Call", strings.NewReader(tc.body))
			r.ContentLength = -1
			r.Header.Set("Content-Type", "application/grpc")
			if tc.timeout != "" {
				r.Header.Set("Grpc-Timeout", tc.timeout)
			}
			w := httptest.NewRecorder()
			rt.ServeHTTP(w, r)
			res := w.Result()
			io.Copy(io.Discard, res.Body)
			status := res.Header.Get("Grpc-Status") + res.Trailer.Get("Grpc-Status")
			if len(srv.bodies) != tc.tries || status != tc.status {
				t.Errorf("%d tries, grpc-status %q; want %d and %q", len(srv.bodies), status, tc.tries, tc.status)
			}
			for i, b := range srv.bodies {
				if b != tc.body {
					t.Errorf("try %d sent %q, want %q", i, b, tc.body)
				}
			}
			if diff := cmp.Diff(tc.waits, waits); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
		})
	}
}
