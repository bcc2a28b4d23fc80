package balancer

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzHashKey parses a hash_key spec and, when it is valid, extracts and
// hashes the key of a request built from the other inputs. Seeds live in
// testdata/fuzz/FuzzHashKey and run with the normal tests.
func FuzzHashKey(f *testing.F) {
	f.Add("cookie:session", "", "a=1; session=xyz", "/p?q=1", "192.0.2.1:80")
	f.Fuzz(func(t *testing.T, spec, header, cookie, target, remote string) {
		k, err := parseHashKey(spec)
		if err != nil {
			return
		}
		// The canonical form parses back to the same key.
		if k2, err := parseHashKey(k.String()); err != nil || k2 != k {
			t.Fatalf("%q → %q → %v, %v", spec, k.String(), k2, err)
		}
		r := &http.Request{Header: http.Header{}, RemoteAddr: remote, URL: &url.URL{}}
		if u, err := url.ParseRequestURI(target); err == nil {
			r.URL = u
		}
		if k.kind == keyHeader {
			r.Header[k.name] = []string{header}
		}
		r.Header["Cookie"] = []string{cookie}
		a, b, ok := k.extract(r)
		switch k.kind {
		case keyIP:
			if !ok || a != clientHost(remote) || !strings.Contains(remote, a) {
				t.Fatalf("ip key of %q = %q", remote, a)
			}
		case keyHeader:
			if ok != (header != "") || (ok && a != header) {
				t.Fatalf("header key = %q, %v; header is %q", a, ok, header)
			}
		case keyCookie:
			if ok && !strings.Contains(cookie, a) {
				t.Fatalf("cookie value %q not in %q", a, cookie)
			}
		case keyURI:
			if a != r.URL.Path || b != r.URL.RawQuery {
				t.Fatalf("uri key = %q, %q", a, b)
			}
		}
		if h1, h2 := k.sum(r), k.sum(r); h1 != h2 {
			t.Fatalf("hash not stable: %x, %x", h1, h2)
		}
		if n := testing.AllocsPerRun(10, func() { k.sum(r) }); n != 0 {
			t.Fatalf("hashing allocates %v times", n)
		}
	})
}
