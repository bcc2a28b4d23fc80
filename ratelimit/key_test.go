package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// fuzzTrusted is the proxy tier the ClientIP tests and fuzz target assume.
var fuzzTrusted = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("fd00::/8"),
	netip.MustParsePrefix("::1/128"),
}

func request(remote string, xff ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = remote
	for _, v := range xff {
		r.Header.Add("X-Forwarded-For", v)
	}
	return r
}

func TestClientIP(t *testing.T) {
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{name: "ipv4 peer", remote: "203.0.113.9:5678", want: "203.0.113.9"},
		{name: "ipv6 peer", remote: "[2001:db8::1]:443", want: "2001:db8::1"},
		{name: "ipv6 peer spelled oddly", remote: "[2001:DB8:0::1]:443", want: "2001:db8::1"},
		{name: "ipv4-mapped peer", remote: "[::ffff:203.0.113.9]:80", want: "203.0.113.9"},
		{name: "zone dropped", remote: "[fe80::1%eth0]:80", want: "fe80::1"},
		{name: "no port", remote: "203.0.113.9", want: "203.0.113.9"},
		{name: "bracketed, no port", remote: "[2001:db8::1]", want: "2001:db8::1"},
		{name: "unix socket", remote: "@", want: ""},
		{name: "empty", remote: "", want: ""},
		{name: "hostname is no address", remote: "localhost:80", want: ""},
		{name: "xff ignored without trusted proxies", remote: "203.0.113.9:1", xff: []string{"198.51.100.1"}, want: "203.0.113.9"},
		{name: "xff ignored from untrusted peer", remote: "203.0.113.9:1", xff: []string{"198.51.100.1"}, trusted: fuzzTrusted, want: "203.0.113.9"},
		{name: "trusted peer, one hop", remote: "10.0.0.1:1", xff: []string{"198.51.100.1"}, trusted: fuzzTrusted, want: "198.51.100.1"},
		{name: "spoofed entries left of the client are ignored", remote: "10.0.0.1:1", xff: []string{"1.1.1.1, 198.51.100.1, 10.0.0.5"}, trusted: fuzzTrusted, want: "198.51.100.1"},
		{name: "repeated header lines are one list", remote: "10.0.0.1:1", xff: []string{"1.1.1.1", "198.51.100.1, 10.0.0.5"}, trusted: fuzzTrusted, want: "198.51.100.1"},
		{name: "client in the earlier line", remote: "10.0.0.1:1", xff: []string{"198.51.100.1", "10.0.0.5"}, trusted: fuzzTrusted, want: "198.51.100.1"},
		{name: "all hops trusted", remote: "10.0.0.1:1", xff: []string{"10.0.0.7, 10.0.0.5"}, trusted: fuzzTrusted, want: "10.0.0.7"},
		{name: "trusted peer, no xff", remote: "10.0.0.1:1", trusted: fuzzTrusted, want: "10.0.0.1"},
		{name: "garbage from a trusted hop stops the walk", remote: "10.0.0.1:1", xff: []string{"198.51.100.1, 10.0.0.5, bogus"}, trusted: fuzzTrusted, want: "10.0.0.1"},
		{name: "garbage behind a trusted hop", remote: "10.0.0.1:1", xff: []string{"bogus, 10.0.0.5"}, trusted: fuzzTrusted, want: "10.0.0.5"},
		{name: "entry with a port", remote: "10.0.0.1:1", xff: []string{"198.51.100.1:4711"}, trusted: fuzzTrusted, want: "198.51.100.1"},
		{name: "bracketed ipv6 entry", remote: "10.0.0.1:1", xff: []string{"[2001:db8::2]:80"}, trusted: fuzzTrusted, want: "2001:db8::2"},
		{name: "ipv6 entry", remote: "[::1]:1", xff: []string{"2001:DB8::2"}, trusted: fuzzTrusted, want: "2001:db8::2"},
		{name: "empty elements skipped", remote: "10.0.0.1:1", xff: []string{" 198.51.100.1 ,, ", ""}, trusted: fuzzTrusted, want: "198.51.100.1"},
		{name: "mapped peer matches ipv4 range", remote: "[::ffff:10.1.2.3]:1", xff: []string{"198.51.100.1"}, trusted: fuzzTrusted, want: "198.51.100.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClientIP(request(tt.remote, tt.xff...), tt.trusted); got != tt.want {
				t.Errorf("ClientIP = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestClientIPAllocs(t *testing.T) {
	tests := []struct {
		name string
		r    *http.Request
	}{
		{"ipv4 peer", request("203.0.113.9:5678")},
		{"ipv6 peer", request("[2001:db8::1]:443")},
		{"through two trusted hops", request("10.0.0.1:1", "1.1.1.1, 198.51.100.1, 10.0.0.5")},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(100, func() { ClientIP(tt.r, fuzzTrusted) }); n != 0 {
			t.Errorf("%s: ClientIP allocates %v times, want 0", tt.name, n)
		}
	}
}

func TestParseKey(t *testing.T) {
	long := strings.Repeat("k", 200)
	tests := []struct {
		name    string
		spec    string
		remote  string
		header  map[string]string
		want    string
		wantErr bool
	}{
		{name: "ip", spec: "ip", remote: "203.0.113.9:1", want: "203.0.113.9"},
		{name: "header present", spec: "header:X-API-Key", remote: "203.0.113.9:1", header: map[string]string{"X-Api-Key": "secret"}, want: "secret"},
		{name: "header name case-insensitive", spec: "header:x-api-key", header: map[string]string{"X-API-KEY": "secret"}, want: "secret"},
		{name: "header missing falls back to ip", spec: "header:X-API-Key", remote: "203.0.113.9:1", want: "ip:203.0.113.9"},
		{name: "header empty falls back to ip", spec: "header:X-API-Key", remote: "203.0.113.9:1", header: map[string]string{"X-Api-Key": ""}, want: "ip:203.0.113.9"},
		{name: "header cannot pose as an ip key", spec: "header:X-API-Key", header: map[string]string{"X-Api-Key": "ip:203.0.113.9"}, want: "hdr:ip:203.0.113.9"},
		{name: "escape prefix is escaped", spec: "header:X-API-Key", header: map[string]string{"X-Api-Key": "hdr:x"}, want: "hdr:hdr:x"},
		{name: "long value hashed", spec: "header:X-API-Key", header: map[string]string{"X-Api-Key": long}, want: headerKey(long)},
		{name: "unknown kind", spec: "cookie:session", wantErr: true},
		{name: "empty", spec: "", wantErr: true},
		{name: "header without name", spec: "header:", wantErr: true},
		{name: "header name with space", spec: "header:X API", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseKey(tt.spec, nil)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseKey(%q) succeeded, want an error", tt.spec)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := request(tt.remote)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			if got := f(r); got != tt.want {
				t.Errorf("key = %q, want %q", got, tt.want)
			}
		})
	}
	if k := headerKey(long); !strings.HasPrefix(k, "sha256:") || len(k) != len("sha256:")+64 {
		t.Errorf("headerKey(200 bytes) = %q, want sha256: and 64 hex digits", k)
	}
}

// FuzzClientIP checks that no RemoteAddr or X-Forwarded-For makes ClientIP
// panic or return anything but "" or a canonical address, and that an
// untrusted peer is never overridden by the header. Its seeds, under
// testdata/fuzz/FuzzClientIP, run with every go test.
func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.1:1234", "198.51.100.1, 10.0.0.5")
	f.Add("203.0.113.9:80", "1.1.1.1")
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		for line := range strings.SplitSeq(xff, "\n") {
			r.Header["X-Forwarded-For"] = append(r.Header["X-Forwarded-For"], line)
		}
		got := ClientIP(r, fuzzTrusted)
		if got == "" {
			return
		}
		addr, err := netip.ParseAddr(got)
		if err != nil {
			t.Fatalf("ClientIP(%q, %q) = %q, not an address: %v", remote, xff, got, err)
		}
		if addr.String() != got || addr.Is4In6() || addr.Zone() != "" {
			t.Fatalf("ClientIP(%q, %q) = %q, not canonical (want %q)", remote, xff, got, addr.Unmap().WithZone("").String())
		}
		if peer := ClientIP(&http.Request{RemoteAddr: remote}, nil); peer != "" && !isTrusted(netip.MustParseAddr(peer), fuzzTrusted) && got != peer {
			t.Fatalf("ClientIP(%q, %q) = %q, but the untrusted peer is %q", remote, xff, got, peer)
		}
	})
}

func TestParseTrustedProxies(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []netip.Prefix
		wantErr bool
	}{
		{name: "empty", in: nil, want: []netip.Prefix{}},
		{name: "cidr and hosts", in: []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::1", "fd00::/8"}, want: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
			netip.MustParsePrefix("2001:db8::1/128"), netip.MustParsePrefix("fd00::/8"),
		}},
		{name: "host bits masked", in: []string{"10.1.2.3/8"}, want: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{name: "mapped unmapped", in: []string{"::ffff:10.0.0.0/104", "::ffff:192.0.2.7"}, want: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
		}},
		{name: "hostname", in: []string{"proxy.internal"}, wantErr: true},
		{name: "bad cidr", in: []string{"10.0.0.0/33"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTrustedProxies(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
