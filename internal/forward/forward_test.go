package forward

import (
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

// capture is a transport that records the outgoing request and answers
// 200 itself, so header rewriting can be tested without a network.
type capture struct{ out *http.Request }

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	c.out = r
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

type first struct{}

func (first) Pick(s []*upstream.Server, _ *http.Request) *upstream.Server { return s[0] }

func newTestRoute(t testing.TB, rt http.RoundTripper, strip string) *Route {
	u, _ := url.Parse("http://127.0.0.1:1")
	reg := upstream.NewRegistry()
	pool := upstream.NewPool("test", []*upstream.Server{{Name: "s1", URL: u, Weight: 1, State: reg.State("s1")}})
	up := &Upstream{Name: "test", Pool: pool, Picker: first{}, Transport: rt, RetryAfter: "1"}
	return NewRoute("r", up, strip, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// FuzzForwardHeaders feeds arbitrary client headers, hosts and paths
// through the rewrite: it must never panic, never forward a hop-by-hop
// header, always append the peer to X-Forwarded-For and keep the Host.
func FuzzForwardHeaders(f *testing.F) {
	f.Add("example.com", "/a/b?c=d", "203.0.113.1", "X-Foo, keep-alive", "X-Foo", "bar", "/a")
	f.Add("[::1]:8080", "/", "", "close", "Upgrade", "websocket", "")
	f.Add("h", "/%2F..%2F", "1.1.1.1, 2.2.2.2", "", "Te", "trailers", "/%2F")
	f.Add("", "", ",,,", "Connection", "Keep-Alive", "x", "/")
	f.Fuzz(func(t *testing.T, host, target, xff, connection, name, value, strip string) {
		c := &capture{}
		rt := newTestRoute(t, c, strip)
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		h := http.Header{}
		if xff != "" {
			h.Set("X-Forwarded-For", xff)
		}
		if connection != "" {
			h.Set("Connection", connection)
		}
		if name != "" {
			h.Set(name, value)
		}
		r := &http.Request{Method: "GET", URL: u, Host: host, Header: h, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, RemoteAddr: "192.0.2.1:1234", Body: http.NoBody}
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, r)
		if c.out == nil {
			return
		}
		out := c.out.Header
		for _, hop := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Proxy-Authorization"} {
			if _, ok := out[hop]; ok {
				t.Errorf("hop-by-hop %s forwarded: %q", hop, out[hop])
			}
		}
		// Connection lists tokens separated by commas and optional white space
		// (RFC 9110 §7.6.1), which is only spaces and tabs.
		for _, f := range strings.Split(connection, ",") {
			if f = strings.Trim(f, " \t"); f != "" && out.Get(f) != "" && !strings.EqualFold(f, "X-Forwarded-For") {
				t.Errorf("header %q named in Connection was forwarded", f)
			}
		}
		if got := out.Get("X-Forwarded-For"); !strings.HasSuffix(got, "192.0.2.1") {
			t.Errorf("X-Forwarded-For = %q, want the peer appended", got)
		}
		if c.out.Host != host {
			t.Errorf("Host = %q, want %q", c.out.Host, host)
		}
		if c.out.URL.Host != "127.0.0.1:1" {
			t.Errorf("sent to %q", c.out.URL.Host)
		}
	})
}

// http.Transport may still read a request after RoundTrip has returned
// (its write loop, when the answer came early): the route must then leave
// the outgoing request's header alone, not clear it into a pool for the
// next request.
func TestRouteLeavesTheTransportItsRequest(t *testing.T) {
	c := &capture{}
	rt := newTestRoute(t, c, "")
	r := httptest.NewRequest("GET", "http://example.com/", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	r = r.WithContext(reqinfo.With(r.Context(), &reqinfo.Info{RequestID: "id"}))
	rt.ServeHTTP(httptest.NewRecorder(), r)
	if c.out == nil {
		t.Fatal("no request reached the transport")
	}
	if got := c.out.Header.Get("X-Forwarded-For"); got != "192.0.2.1" {
		t.Errorf("the transport's request after the exchange: X-Forwarded-For %q, want %q as sent", got, "192.0.2.1")
	}
}

func TestStripPrefix(t *testing.T) {
	cases := []struct{ path, prefix, want string }{
		{"/v1/users", "/v1", "/users"},
		{"/v1", "/v1", "/"},
		{"/v1/", "/v1", "/"},
		{"/other", "/v1", "/other"},
	}
	for _, tc := range cases {
		if got := strip(tc.path, tc.prefix); got != tc.want {
			t.Errorf("strip(%q, %q) = %q, want %q", tc.path, tc.prefix, got, tc.want)
		}
	}
}

func TestStatusFor(t *testing.T) {
	if got := StatusFor(ErrNoServer); got != 503 {
		t.Errorf("no server: %d", got)
	}
	if got := StatusFor(io.ErrUnexpectedEOF); got != 502 {
		t.Errorf("broken response: %d", got)
	}
}
