package policy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/reqinfo"
	"github.com/tbsphathuynh/proxy/upstream"
)

// forward_auth against an auth server: what each of its answers does to
// the request.
func TestForwardAuthAnswers(t *testing.T) {
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "ok":
			w.Header().Set("X-User", "alice")
		case "no-content":
			w.Header().Set("X-User", "bob")
			w.WriteHeader(http.StatusNoContent)
		case "anonymous":
			// 2xx without X-User: the client's own X-User must not pass.
		case "forbidden":
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "not you")
		case "login":
			w.Header().Set("Location", "https://login.example/?next=/")
			w.WriteHeader(http.StatusFound)
		case "broken":
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "auth broke")
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="r"`)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, "who are you")
		}
	}))
	t.Cleanup(auth.Close)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "app saw user="+r.Header.Get("X-User"))
	})
	h, rejected := build(t, "      - forward_auth: {url: '"+auth.URL+"', copy_headers: [x-user]}\n", next)
	cases := []struct {
		name, token string
		code        int
		body        string
		header      string // a header of the answer, "Name: value"
	}{
		{"200 lets through with the vouched header", "ok", 200, "app saw user=alice", ""},
		{"204 lets through too", "no-content", 200, "app saw user=bob", ""},
		{"2xx without the header drops the client's", "anonymous", 200, "app saw user=", ""},
		{"401 returned with its challenge and body", "", 401, "who are you", `Www-Authenticate: Bearer realm="r"`},
		{"403 returned with its body", "forbidden", 403, "not you", "Content-Type: text/plain"},
		{"302 to a login page returned, not followed", "login", 302, "", "Location: https://login.example/?next=/"},
		{"the auth service's 500 returned, not let through", "broken", 500, "auth broke", ""},
	}
	want := 0
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-User", "mallory")
		if tc.token != "" {
			r.Header.Set("Authorization", tc.token)
		}
		res := serve(h, r)
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != tc.code || string(b) != tc.body {
			t.Errorf("%s: %d %q, want %d %q", tc.name, res.StatusCode, b, tc.code, tc.body)
		}
		if k, v, ok := strings.Cut(tc.header, ": "); ok && res.Header.Get(k) != v {
			t.Errorf("%s: %s %q, want %q", tc.name, k, res.Header.Get(k), v)
		}
		if tc.code != 200 {
			want++
		}
	}
	if *rejected != want {
		t.Errorf("%d refusals counted, want %d", *rejected, want)
	}
	auth.Close()
	if res := serve(h, httptest.NewRequest("GET", "/", nil)); res.StatusCode != 503 {
		t.Errorf("auth service down: %d, want 503", res.StatusCode)
	}
}

// sticky: which server the forwarder is asked for, and when the cookie is
// set, for each cookie a client brings and server that answers.
func TestSticky(t *testing.T) {
	idA, idB := upstream.AffinityID("app", "a"), upstream.AffinityID("app", "b")
	cases := []struct {
		name, cookie, answeredBy string
		affinity                 string // what the forwarder is asked for
		setCookie                string // the Set-Cookie value, "" for none
	}{
		{"first request: cookie set for the server that answered", "", "a", "", "srv=" + idA},
		{"cookie followed: asked for, not set again", idA, "a", idA, ""},
		{"its server did not answer: cookie moved", idA, "b", idA, "srv=" + idB},
		{"an unknown cookie: replaced", "garbage", "b", "garbage", "srv=" + idB},
		{"the proxy's own answer: no cookie", "", "", "", ""},
	}
	for _, tc := range cases {
		var asked string
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := reqinfo.From(r.Context())
			asked = info.Affinity
			info.Upstream, info.Server = "app", tc.answeredBy
			io.WriteString(w, "ok")
		})
		h, _ := build(t, "      - sticky: {cookie: srv, ttl: 1h, secure: true, http_only: true, same_site: strict}\n", next)
		r := httptest.NewRequest("GET", "/", nil)
		if tc.cookie != "" {
			r.AddCookie(&http.Cookie{Name: "srv", Value: tc.cookie})
		}
		r = r.WithContext(reqinfo.With(r.Context(), &reqinfo.Info{}))
		res := serve(h, r)
		if asked != tc.affinity {
			t.Errorf("%s: the forwarder was asked for %q, want %q", tc.name, asked, tc.affinity)
		}
		set := res.Header.Get("Set-Cookie")
		if tc.setCookie == "" {
			if set != "" {
				t.Errorf("%s: Set-Cookie %q, want none", tc.name, set)
			}
			continue
		}
		for _, part := range []string{tc.setCookie + ";", "Path=/", "Max-Age=3600", "HttpOnly", "Secure", "SameSite=Strict"} {
			if !strings.Contains(set, part) {
				t.Errorf("%s: Set-Cookie %q lacks %q", tc.name, set, part)
			}
		}
	}
}

// roundTripFunc is an http.RoundTripper from a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// mirror: which requests are copied, with what, and what happens when
// the mirror is full.
func TestMirrorCopies(t *testing.T) {
	type sent struct{ method, uri, body string }
	copies := make(chan sent, 200)
	hold := make(chan struct{})
	var holding atomic.Bool
	shadow := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		b, _ := io.ReadAll(r.Body)
		copies <- sent{r.Method, r.URL.RequestURI(), string(b)}
		if holding.Load() {
			<-hold
		}
		return &http.Response{StatusCode: 500, Body: io.NopCloser(strings.NewReader("shadow"))}, nil
	})
	var dropped atomic.Int64
	mk := func(settings string) http.Handler {
		return buildEnv(t, "      - mirror: "+settings+"\n", Env{
			Route: "r", Dropped: func() { dropped.Add(1) },
			Upstream: func(name string) http.RoundTripper {
				if name == "shadow" {
					return shadow
				}
				return nil
			},
		}, echo)
	}
	full := mk("{upstream: shadow}")
	none := mk("{upstream: shadow, percent: 0}")
	cases := []struct {
		name   string
		h      http.Handler
		method string
		body   string
		chunk  bool
		copied bool
	}{
		{"GET copied", full, "GET", "", false, true},
		{"small body copied with its body", full, "POST", "payload", false, true},
		{"body over 64 KiB not copied", full, "POST", strings.Repeat("x", 64<<10+1), false, false},
		{"chunked body not copied", full, "POST", "stream", true, false},
		{"percent 0: nothing copied", none, "GET", "", false, false},
	}
	for _, tc := range cases {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		r := httptest.NewRequest(tc.method, "/p?q=1", body)
		if tc.chunk {
			r.ContentLength = -1
		}
		res := serve(tc.h, r)
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || string(b) != "ok" {
			t.Errorf("%s: the client got %d %q, want the route's own answer", tc.name, res.StatusCode, b)
		}
		var got *sent
		if tc.copied {
			c := <-copies
			got = &c
		}
		select {
		case c := <-copies:
			t.Errorf("%s: unexpected copy %+v", tc.name, c)
		default:
		}
		if got != nil && (got.method != tc.method || got.uri != "/p?q=1" || got.body != tc.body) {
			t.Errorf("%s: copy %+v", tc.name, *got)
		}
	}

	// A mirror that holds every copy: 64 under way, the rest dropped and
	// counted, the clients all answered.
	holding.Store(true)
	fresh := mk("{upstream: shadow}")
	for range 100 {
		res := serve(fresh, httptest.NewRequest("GET", "/", nil))
		if res.StatusCode != 200 {
			t.Fatalf("with the mirror full the client got %d", res.StatusCode)
		}
	}
	for range 64 {
		<-copies
	}
	if n := dropped.Load(); n != 36 {
		t.Errorf("%d copies dropped, want 36 (64 under way)", n)
	}
	holding.Store(false)
	close(hold)
}

// buildEnv is build with env given.
func buildEnv(t *testing.T, yaml string, env Env, next http.Handler) http.Handler {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte("servers: [{url: 'http://127.0.0.1:1'}]\nupstreams:\n  shadow:\n    servers: [{url: 'http://127.0.0.1:2'}]\nroutes:\n  - match: {path_prefix: /}\n    upstream: default\n    policies:\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := Chain(cfg.Routes[0].Policies, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	return chain(next)
}

// A copy that fails pauses the copies (counted as dropped) for a second,
// doubling while the probe after each pause fails, and an answer from the
// mirror ends the pauses.
func TestMirrorPausesAfterAFailure(t *testing.T) {
	var now atomic.Int64
	done := make(chan struct{}, 10)
	defer func(n func() int64, d func()) { mirrorNow, mirrorDone = n, d }(mirrorNow, mirrorDone)
	mirrorNow = now.Load
	mirrorDone = func() { done <- struct{}{} }
	var down atomic.Bool
	down.Store(true)
	shadow := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if down.Load() {
			return nil, errors.New("connection refused")
		}
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})
	var dropped atomic.Int64
	h := buildEnv(t, "      - mirror: {upstream: shadow}\n", Env{
		Route: "r", Dropped: func() { dropped.Add(1) },
		Upstream: func(string) http.RoundTripper { return shadow },
	}, echo)
	// copied serves one request and reports whether it was copied, once
	// the copy is over.
	copied := func() bool {
		before := dropped.Load()
		serve(h, httptest.NewRequest("GET", "/", nil))
		if dropped.Load() > before {
			return false
		}
		<-done
		return true
	}
	step := func(d time.Duration) { now.Add(int64(d)) }
	if !copied() {
		t.Fatal("first request not copied")
	}
	for _, pause := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if copied() {
			t.Fatalf("copied during the %v pause", pause)
		}
		step(pause - time.Millisecond)
		if copied() {
			t.Fatalf("copied just before the %v pause ended", pause)
		}
		step(time.Millisecond)
		if !copied() {
			t.Fatalf("no probe copy after the %v pause", pause)
		}
	}
	down.Store(false)
	step(8 * time.Second)
	if !copied() {
		t.Fatal("no probe copy after the 8 s pause")
	}
	for i := range 3 {
		if !copied() {
			t.Fatalf("request %d after the mirror answered not copied", i)
		}
	}
}
