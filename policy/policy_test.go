package policy

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/bcrypt"

	"github.com/tbsphathuynh/proxy/config"
)

// build parses a route's policies from YAML, as a config file has them,
// and builds them around next.
func build(t *testing.T, yaml string, next http.Handler) (http.Handler, *int) {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte("servers: [{url: 'http://127.0.0.1:1'}]\nroutes:\n  - match: {path_prefix: /}\n    upstream: default\n    policies:\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	rejected := 0
	chain, err := Chain(cfg.Routes[0].Policies, Env{Route: "r"}, func(string) func() { return func() { rejected++ } })
	if err != nil {
		t.Fatal(err)
	}
	return chain(next), &rejected
}

// echo answers with what it received, so tests see what the policies
// passed on.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Server", "backend")
	w.Header().Set("X-Seen-Path", r.URL.EscapedPath())
	w.Header().Set("X-Seen-Env", r.Header.Get("X-Env"))
	w.Header().Set("X-Seen-Debug", r.Header.Get("X-Debug"))
	w.Header().Set("X-Seen-Auth", r.Header.Get("Authorization"))
	io.Copy(io.Discard, r.Body)
	w.Write([]byte("ok"))
})

func serve(h http.Handler, r *http.Request) *http.Response {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func TestHeaders(t *testing.T) {
	h, _ := build(t, `      - headers: {request: {set: {X-Env: prod}, remove: [x-debug]}, response: {set: {X-Frame-Options: DENY}, add: {Vary: Cookie}, remove: [Server]}}
`, echo)
	r := httptest.NewRequest("GET", "/a", nil)
	r.Header.Set("X-Env", "dev")
	r.Header.Set("X-Debug", "1")
	res := serve(h, r)
	for name, want := range map[string]string{"X-Seen-Env": "prod", "X-Seen-Debug": "", "X-Frame-Options": "DENY", "Server": "", "Vary": "Cookie"} {
		if got := res.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

// Request values fill their placeholders; without a verified client
// certificate the subject is empty, so a client's own value never passes.
func TestHeadersPlaceholders(t *testing.T) {
	h, _ := build(t, `      - headers: {request: {set: {X-Env: "{tls_client_subject}@{host}"}, add: {X-Debug: "{path}"}}}
`, echo)
	r := httptest.NewRequest("GET", "http://app.test/a", nil)
	r.Header.Set("X-Env", "CN=mallory")
	res := serve(h, r)
	for name, want := range map[string]string{"X-Seen-Env": "@app.test", "X-Seen-Debug": "/a"} {
		if got := res.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

// The response edits reach the proxy's own answers too (a 502, a 429):
// they wrap whatever answers.
func TestHeadersOnTheProxysOwnAnswers(t *testing.T) {
	h, _ := build(t, "      - headers: {response: {set: {X-Frame-Options: DENY}}}\n", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
	}))
	if res := serve(h, httptest.NewRequest("GET", "/", nil)); res.Header.Get("X-Frame-Options") != "DENY" || res.StatusCode != 502 {
		t.Errorf("%d %v", res.StatusCode, res.Header)
	}
}

func TestRedirect(t *testing.T) {
	cases := []struct{ yaml, url, host, want string }{
		{`{to: "https://{host}{uri}", code: 308}`, "/a%2Fb?x=1", "example.com", "https://example.com/a%2Fb?x=1"},
		{`{to: "https://{hostname}:8443{path}"}`, "/p?q", "example.com:8080", "https://example.com:8443/p"},
		{`{to: "https://other.example/"}`, "/x", "h", "https://other.example/"},
	}
	for _, tc := range cases {
		h, _ := build(t, "      - redirect: "+tc.yaml+"\n", echo)
		r := httptest.NewRequest("GET", tc.url, nil)
		r.Host = tc.host
		res := serve(h, r)
		code := 302
		if strings.Contains(tc.yaml, "308") {
			code = 308
		}
		if res.StatusCode != code || res.Header.Get("Location") != tc.want {
			t.Errorf("%s %s: %d %q, want %d %q", tc.yaml, tc.url, res.StatusCode, res.Header.Get("Location"), code, tc.want)
		}
	}
}

func TestRewrite(t *testing.T) {
	h, _ := build(t, `      - rewrite: {path_regex: "^/old/(.*)", replace: "/new/$1"}
`, echo)
	for url, want := range map[string]string{"/old/a/b": "/new/a/b", "/old/a%2Fb": "/new/a%2Fb", "/other": "/other", "/x/old/y": "/x/old/y"} {
		if got := serve(h, httptest.NewRequest("GET", url, nil)).Header.Get("X-Seen-Path"); got != want {
			t.Errorf("%s: server saw %s, want %s", url, got, want)
		}
	}
}

func TestIPFilter(t *testing.T) {
	h, rejected := build(t, `      - ip_filter: {allow: [10.0.0.0/8, "::1"], deny: [10.6.6.0/24], trusted_proxies: [192.0.2.1]}
`, echo)
	cases := []struct {
		remote, xff string
		want        int
	}{
		{"10.1.2.3:5", "", 200},
		{"10.6.6.6:5", "", 403},
		{"[::1]:5", "", 200},
		{"[::ffff:10.1.2.3]:5", "", 200},
		{"203.0.113.9:5", "", 403},
		{"203.0.113.9:5", "10.1.2.3", 403}, // not a trusted proxy: its header is not believed
		{"192.0.2.1:5", "10.1.2.3", 200},
		{"192.0.2.1:5", "10.6.6.1", 403},
		{"garbage", "", 403},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := serve(h, r).StatusCode; got != tc.want {
			t.Errorf("%s (XFF %q): %d, want %d", tc.remote, tc.xff, got, tc.want)
		}
	}
	if *rejected != 5 {
		t.Errorf("%d rejections counted, want 5", *rejected)
	}
}

func TestBasicAuth(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	// htpasswd writes $2y$; Go's bcrypt reads it as $2a$.
	y := "$2y$" + string(hash[4:])
	h, rejected := build(t, "      - basic_auth: {realm: admin, users: {alice: '"+y+"'}}\n", echo)
	for _, tc := range []struct {
		user, pass string
		set        bool
		want       int
	}{
		{"alice", "s3cret", true, 200},
		{"alice", "s3cret", true, 200}, // remembered
		{"alice", "wrong", true, 401},
		{"bob", "s3cret", true, 401},
		{"", "", false, 401},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.set {
			r.SetBasicAuth(tc.user, tc.pass)
		}
		res := serve(h, r)
		if res.StatusCode != tc.want {
			t.Errorf("%s:%s: %d, want %d", tc.user, tc.pass, res.StatusCode, tc.want)
		}
		if tc.want == 401 && res.Header.Get("WWW-Authenticate") != `Basic realm="admin", charset="UTF-8"` {
			t.Errorf("challenge %q", res.Header.Get("WWW-Authenticate"))
		}
		if tc.want == 200 && res.Header.Get("X-Seen-Auth") != "" {
			t.Error("the credentials were forwarded to the server")
		}
	}
	if *rejected != 3 {
		t.Errorf("%d rejections counted, want 3", *rejected)
	}
}

func TestCORS(t *testing.T) {
	h, rejected := build(t, `      - cors: {origins: ["https://app.example.com"], methods: [GET, POST], credentials: true, max_age: 10m, expose_headers: [X-Total]}
`, echo)
	pre := func(origin, method string) *http.Response {
		r := httptest.NewRequest("OPTIONS", "/api", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", method)
		r.Header.Set("Access-Control-Request-Headers", "content-type")
		return serve(h, r)
	}
	res := pre("https://app.example.com", "POST")
	for name, want := range map[string]string{
		"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Methods": "GET, POST", "Access-Control-Max-Age": "600", "Access-Control-Allow-Headers": "content-type",
	} {
		if got := res.Header.Get(name); got != want {
			t.Errorf("preflight %s = %q, want %q", name, got, want)
		}
	}
	if res.StatusCode != 204 {
		t.Errorf("preflight: %d", res.StatusCode)
	}
	if res := pre("https://evil.example", "POST"); res.StatusCode != 403 || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v", res.StatusCode, res.Header)
	}
	if res := pre("https://app.example.com", "DELETE"); res.StatusCode != 403 {
		t.Errorf("preflight for an unlisted method: %d", res.StatusCode)
	}
	r := httptest.NewRequest("GET", "/api", nil)
	r.Header.Set("Origin", "https://app.example.com")
	res = serve(h, r)
	if res.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || res.Header.Get("Access-Control-Expose-Headers") != "X-Total" || !strings.Contains(strings.Join(res.Header["Vary"], ","), "Origin") {
		t.Errorf("a request from the origin: %v", res.Header)
	}
	r.Header.Set("Origin", "https://evil.example")
	if res = serve(h, r); res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a request from another origin: %d %v", res.StatusCode, res.Header)
	}
	if *rejected != 2 {
		t.Errorf("%d rejections counted, want 2", *rejected)
	}
}

func TestMaxBody(t *testing.T) {
	reached := 0
	h, rejected := build(t, "      - max_body: 10B\n", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		if _, err := io.ReadAll(r.Body); err != nil {
			var mbe *http.MaxBytesError
			if !errors.As(err, &mbe) {
				t.Errorf("body error %v, want a MaxBytesError (the forwarder answers it 413)", err)
			}
			w.WriteHeader(413)
			return
		}
		w.WriteHeader(200)
	}))
	if res := serve(h, httptest.NewRequest("POST", "/", strings.NewReader("0123456789"))); res.StatusCode != 200 {
		t.Errorf("10 bytes: %d", res.StatusCode)
	}
	if res := serve(h, httptest.NewRequest("POST", "/", strings.NewReader("0123456789x"))); res.StatusCode != 413 || res.Header.Get("Connection") != "close" {
		t.Errorf("11 bytes: %d %v", res.StatusCode, res.Header)
	}
	if reached != 1 {
		t.Errorf("the handler saw %d requests, want 1: an over-long declared body must not reach it", reached)
	}
	r := httptest.NewRequest("POST", "/", io.MultiReader(strings.NewReader("0123456789"), strings.NewReader("x")))
	r.ContentLength = -1
	if res := serve(h, r); res.StatusCode != 413 {
		t.Errorf("11 bytes chunked: %d", res.StatusCode)
	}
	if *rejected != 2 {
		t.Errorf("%d rejections counted, want 2", *rejected)
	}
}

func TestCompress(t *testing.T) {
	big := strings.Repeat("hello, compressible world. ", 200)
	backend := func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Path {
		case "/json":
			h.Set("Content-Type", "application/json")
			h.Set("Content-Length", "5400")
			h.Set("ETag", `"v1"`)
		case "/small":
			h.Set("Content-Type", "text/plain")
			io.WriteString(w, "tiny")
			return
		case "/image":
			h.Set("Content-Type", "image/png")
		case "/encoded":
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Encoding", "gzip")
		case "/notransform":
			h.Set("Content-Type", "text/plain")
			h.Set("Cache-Control", "public, no-transform")
		case "/partial":
			// A partial answer, however it was asked for: its bytes are a
			// range of the representation, which an encoding would change
			// (RFC 9110 §14.4).
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Range", fmt.Sprintf("bytes 0-%d/99999", len(big)-1))
			w.WriteHeader(http.StatusPartialContent)
		case "/stream":
			h.Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: 1\n\n")
			w.(http.Flusher).Flush()
		default:
			h.Set("Content-Type", "text/html; charset=utf-8")
		}
		io.WriteString(w, big)
	}
	h, _ := build(t, "      - compress: {algorithms: [zstd, br, gzip], min_size: 1KiB}\n", http.HandlerFunc(backend))
	decode := map[string]func(io.Reader) io.Reader{
		"gzip": func(r io.Reader) io.Reader { z, _ := gzip.NewReader(r); return z },
		"br":   func(r io.Reader) io.Reader { return brotli.NewReader(r) },
		"zstd": func(r io.Reader) io.Reader { z, _ := zstd.NewReader(r); return z },
	}
	cases := []struct{ path, accept, want string }{
		{"/html", "gzip, deflate, br, zstd", "zstd"},
		{"/html", "gzip, br;q=0.5", "br"},
		{"/html", "gzip", "gzip"},
		{"/html", "br;q=0, gzip", "gzip"},
		{"/html", "*", "zstd"},
		{"/html", "identity", ""},
		{"/html", "", ""},
		{"/json", "gzip", "gzip"},
		{"/small", "gzip", ""},
		{"/image", "gzip", ""},
		{"/encoded", "br", "gzip"}, // the server's own encoding, untouched
		{"/notransform", "gzip", ""},
		{"/stream", "gzip", "gzip"},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", tc.path, nil)
		if tc.accept != "" {
			r.Header.Set("Accept-Encoding", tc.accept)
		}
		res := serve(h, r)
		got := res.Header.Get("Content-Encoding")
		if got != tc.want {
			t.Errorf("%s with %q: encoding %q, want %q", tc.path, tc.accept, got, tc.want)
			continue
		}
		if tc.path == "/encoded" {
			continue
		}
		body := io.Reader(res.Body)
		if got != "" {
			body = decode[got](res.Body)
			if res.Header.Get("Content-Length") != "" {
				t.Errorf("%s: an encoded answer kept the Content-Length", tc.path)
			}
		}
		b, err := io.ReadAll(body)
		want := big
		switch tc.path {
		case "/small":
			want = "tiny"
		case "/stream":
			want = "data: 1\n\n" + big
		}
		if err != nil || string(b) != want {
			t.Errorf("%s with %q: body of %d bytes (%v), want %d", tc.path, tc.accept, len(b), err, len(want))
		}
		if tc.path == "/json" && res.Header.Get("ETag") != `W/"v1"` {
			t.Errorf("ETag %q of an encoded answer, want it weak", res.Header.Get("ETag"))
		}
		if (tc.path == "/html" || tc.path == "/small") && res.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("%s: Vary %q", tc.path, res.Header.Get("Vary"))
		}
	}
	// Range requests and HEAD are left alone.
	r := httptest.NewRequest("GET", "/html", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	r.Header.Set("Range", "bytes=0-10")
	if res := serve(h, r); res.Header.Get("Content-Encoding") != "" {
		t.Error("a Range request was answered encoded")
	} else if b, _ := io.ReadAll(res.Body); string(b) != big {
		t.Errorf("a Range request's answer changed: %d bytes", len(b))
	}
	r = httptest.NewRequest("GET", "/partial", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	if res := serve(h, r); res.StatusCode != 206 || res.Header.Get("Content-Encoding") != "" {
		t.Errorf("a 206 answer: %d, encoding %q, want it as the server sent it", res.StatusCode, res.Header.Get("Content-Encoding"))
	}
	r = httptest.NewRequest("HEAD", "/html", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	if res := serve(h, r); res.Header.Get("Content-Encoding") != "" {
		t.Error("a HEAD request was answered as if encoded")
	}
}

// A registered policy decodes its own block, is validated at load with
// the position of the policy, and runs where the route lists it.
func TestRegisteredPolicy(t *testing.T) {
	registerOnce()
	h, rejected := build(t, "      - test_stamp: {value: hi, refuse: /no}\n", echo)
	if res := serve(h, httptest.NewRequest("GET", "/a", nil)); res.Header.Get("X-Stamp") != "hi" {
		t.Errorf("X-Stamp %q", res.Header.Get("X-Stamp"))
	}
	if res := serve(h, httptest.NewRequest("GET", "/no", nil)); res.StatusCode != 403 || *rejected != 1 {
		t.Errorf("%d, %d rejections", res.StatusCode, *rejected)
	}
	_, err := config.Parse("t.yaml", []byte("servers: [{url: 'http://127.0.0.1:1'}]\nroutes:\n  - match: {path_prefix: /}\n    upstream: default\n    policies:\n      - test_stamp: {valu: hi}\n      - test_stamp: {}\n"))
	for _, want := range []string{
		`t.yaml:6:22: routes[0].policies[0].test_stamp.valu: unknown key, did you mean "value"?`,
		`t.yaml:7:21: routes[0].policies[1].test_stamp: value is required`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors\n%v\nlack %s", err, want)
		}
	}
}

type stampSettings struct {
	Value  string `yaml:"value"`
	Refuse string `yaml:"refuse"`
}

func (s *stampSettings) Validate() error {
	if s.Value == "" {
		return errorString("value is required")
	}
	return nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

var registered bool

func registerOnce() {
	if registered {
		return
	}
	registered = true
	Register("test_stamp", &stampSettings{}, func(settings any, env Env) (func(http.Handler) http.Handler, error) {
		s := settings.(*stampSettings)
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if s.Refuse != "" && r.URL.Path == s.Refuse {
					env.Rejected()
					w.WriteHeader(403)
					return
				}
				w.Header().Set("X-Stamp", s.Value)
				next.ServeHTTP(w, r)
			})
		}, nil
	})
}

func TestPolicyErrorsNamePositions(t *testing.T) {
	yaml := `servers: [{url: 'http://127.0.0.1:1'}]
routes:
  - match: {path_prefix: /}
    upstream: default
    policies:
      - headerz: {}
      - redirect: {to: "https://{hots}/"}
      - ip_filter: {allow: [10.0.0.0/33]}
      - basic_auth: {users: {alice: plaintext}}
      - cors: {origins: ["*"], credentials: true}
      - compress: {algorithms: [lzma]}
      - {headers: {}, cors: {origins: ["*"]}}
      - rewrite: {path_regex: "(", replace: x}
`
	_, err := config.Parse("t.yaml", []byte(yaml))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`t.yaml:6:9: routes[0].policies[0].headerz: unknown policy, did you mean "headers"?`,
		`t.yaml:7:24: routes[0].policies[1].redirect.to: unknown placeholder {hots}, did you mean "host"?`,
		`t.yaml:8:29: routes[0].policies[2].ip_filter.allow[0]: "10.0.0.0/33" is not an IP address or CIDR`,
		`t.yaml:9:37: routes[0].policies[3].basic_auth.users.alice: must be a bcrypt hash`,
		`t.yaml:10:26: routes[0].policies[4].cors.origins[0]: "*" cannot go with credentials: true`,
		`t.yaml:11:33: routes[0].policies[5].compress.algorithms[0]: unknown algorithm "lzma"`,
		`t.yaml:12:9: routes[0].policies[6]: a list entry holds one policy`,
		`t.yaml:13:31: routes[0].policies[7].rewrite.path_regex: not a regular expression`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors\n%v\nlack %s", err, want)
		}
	}
}
