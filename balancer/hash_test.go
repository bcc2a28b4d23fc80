package balancer

import (
	"fmt"
	"math"
	"net/http"
	"testing"

	"github.com/tbsphathuynh/proxy/upstream"
)

func TestClientHost(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"192.0.2.1:5678", "192.0.2.1"},
		{"192.0.2.1", "192.0.2.1"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"[2001:db8::1]", "2001:db8::1"},
		{"2001:db8::1", "2001:db8::1"},
		{"[fe80::1%eth0]:80", "fe80::1%eth0"},
		{"[broken", "[broken"},
		{"", ""},
		{"@", "@"}, // unix socket peers
	}
	for _, tt := range tests {
		if got := clientHost(tt.addr); got != tt.want {
			t.Errorf("clientHost(%q) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestIPHashStableAndSpread(t *testing.T) {
	servers := fixture(1, 1, 1, 1)
	p := mustNew(t, "ip_hash", Options{})
	got := map[string]int{}
	for i := range 1000 {
		ip := fmt.Sprintf("198.51.%d.%d", i/250, i%250)
		s := p.Pick(servers, request(ip+":1000"))
		for port := range 5 { // every connection of a client, every time
			if again := p.Pick(servers, request(fmt.Sprintf("%s:%d", ip, 2000+port))); again != s {
				t.Fatalf("%s went to %s, then %s", ip, s.Name, again.Name)
			}
		}
		got[s.Name]++
	}
	for _, s := range servers {
		if !within(got[s.Name], 250, 0.30) {
			t.Errorf("%s got %d of 1000 clients, want 250 ±30%%", s.Name, got[s.Name])
		}
	}
}

func TestIPHashMovesOnlyLeavingServersClients(t *testing.T) {
	servers := fixture(1, 2, 1, 1)
	p := mustNew(t, "ip_hash", Options{})
	without := []*upstream.Server{servers[0], servers[1], servers[3]}
	moved := 0
	for i := range 2000 {
		r := request(fmt.Sprintf("203.0.113.%d:1", i))
		before, after := p.Pick(servers, r), p.Pick(without, r)
		if before != servers[2] && before != after {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d clients of remaining servers moved when c left", moved)
	}
}

func TestConsistentHashMovesFewKeys(t *testing.T) {
	servers := fixture(1, 1, 1, 1, 1)
	p := mustNew(t, "consistent_hash", Options{HashKey: "uri"})
	const keys = 10_000
	reqs := make([]*http.Request, keys)
	before := make([]*upstream.Server, keys)
	for i := range reqs {
		reqs[i], _ = http.NewRequest("GET", fmt.Sprintf("http://x/item/%d", i), nil)
		before[i] = p.Pick(servers[:4], reqs[i])
	}
	moved := 0
	for i, r := range reqs {
		if after := p.Pick(servers, r); after != before[i] {
			if after != servers[4] {
				t.Fatalf("key %d moved between old servers", i)
			}
			moved++
		}
	}
	t.Logf("a fifth server moved %.1f%% of keys", float64(moved)/keys*100)
	// Ideal is 1/5 of the keys, those the new server takes over.
	if frac := float64(moved) / keys; frac > 0.25 || frac < 0.10 {
		t.Errorf("a fifth server moved %.1f%% of keys, want ≤ 25%% (ideal 20%%)", frac*100)
	}
}

func TestConsistentHashBoundedLoad(t *testing.T) {
	tests := []struct {
		name    string
		epsilon float64
		keys    int // distinct keys; 1 is a single hot key
	}{
		{"hot key", 0, 1},
		{"hot key tight", 0.1, 1},
		{"few keys", 0.25, 3},
		{"many keys", 0.5, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servers := fixture(1, 1, 1, 1)
			p := mustNew(t, "consistent_hash", Options{HashKey: "header:X-User", BoundedLoad: tt.epsilon})
			eps := tt.epsilon
			if eps == 0 {
				eps = DefaultBoundedLoad
			}
			r := request("192.0.2.1:1")
			for i := range 400 { // requests that never finish
				r.Header.Set("X-User", fmt.Sprint(i%tt.keys))
				p.Pick(servers, r).Acquire()
				total, peak := int64(0), int64(0)
				for _, s := range servers {
					total += s.InFlight()
					peak = max(peak, s.InFlight())
				}
				bound := int64(math.Ceil((1 + eps) * float64(total) / float64(len(servers))))
				if peak > bound {
					t.Fatalf("after %d requests a server holds %d, bound ⌈(1+%.2f)×%d/4⌉ = %d", total, peak, eps, total, bound)
				}
			}
		})
	}
}

func TestConsistentHashKeys(t *testing.T) {
	servers := fixture(1, 1, 1, 1, 1, 1, 1, 1)
	mk := func(remote, header, cookie, target string) *http.Request {
		r, _ := http.NewRequest("GET", "http://x"+target, nil)
		r.RemoteAddr = remote
		if header != "" {
			r.Header.Set("X-Api-Key", header)
		}
		if cookie != "" {
			r.Header.Set("Cookie", "theme=dark; session="+cookie+"; lang=en")
		}
		return r
	}
	tests := []struct {
		key  string
		same [2]*http.Request // must go to the same server
	}{
		{"ip", [2]*http.Request{mk("192.0.2.7:1", "", "", "/a"), mk("192.0.2.7:2", "k", "c", "/b")}},
		{"uri", [2]*http.Request{mk("192.0.2.1:1", "", "", "/p?q=1"), mk("192.0.2.2:1", "", "", "/p?q=1")}},
		{"header:x-api-key", [2]*http.Request{mk("192.0.2.1:1", "k1", "", "/a"), mk("192.0.2.2:1", "k1", "", "/b")}},
		{"cookie:session", [2]*http.Request{mk("192.0.2.1:1", "", "s1", "/a"), mk("192.0.2.2:1", "", "s1", "/b")}},
		// Without its header a request hashes its client address.
		{"header:x-api-key", [2]*http.Request{mk("192.0.2.9:1", "", "", "/a"), mk("192.0.2.9:2", "", "", "/b")}},
	}
	for _, tt := range tests {
		p := mustNew(t, "consistent_hash", Options{HashKey: tt.key})
		if a, b := p.Pick(servers, tt.same[0]), p.Pick(servers, tt.same[1]); a != b {
			t.Errorf("%s: same key went to %s and %s", tt.key, a.Name, b.Name)
		}
	}
	// Different keys spread.
	p := mustNew(t, "consistent_hash", Options{HashKey: "cookie:session"})
	seen := map[*upstream.Server]bool{}
	for i := range 200 {
		seen[p.Pick(servers, mk("192.0.2.1:1", "", fmt.Sprint(i), "/"))] = true
	}
	if len(seen) != len(servers) {
		t.Errorf("200 sessions reached %d of %d servers", len(seen), len(servers))
	}
}

func TestParseHashKey(t *testing.T) {
	tests := []struct {
		spec, want string // want "" means an error
	}{
		{"", "ip"},
		{"ip", "ip"},
		{"uri", "uri"},
		{"header:x-api-key", "header:X-Api-Key"},
		{"cookie:session_id", "cookie:session_id"},
		{"header:", ""},
		{"cookie", ""},
		{"ip:x", ""},
		{"header:bad name", ""},
		{"cookie:a=b", ""},
		{"query:x", ""},
		{"IP", ""},
	}
	for _, tt := range tests {
		k, err := parseHashKey(tt.spec)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("parseHashKey(%q) = %v, want an error", tt.spec, k)
		case tt.want != "" && err != nil:
			t.Errorf("parseHashKey(%q): %v", tt.spec, err)
		case tt.want != "" && k.String() != tt.want:
			t.Errorf("parseHashKey(%q) = %v, want %v", tt.spec, k, tt.want)
		}
	}
	if _, err := New("consistent_hash", Options{BoundedLoad: -1}); err == nil {
		t.Error("negative bounded load accepted")
	}
}

func TestCookieValue(t *testing.T) {
	tests := []struct {
		lines     []string
		name      string
		want      string
		wantFound bool
	}{
		{[]string{"a=1; b=2"}, "b", "2", true},
		{[]string{"a=1", "b=\"q\""}, "b", "q", true},
		{[]string{"ab=1; b=2"}, "a", "", false},
		{[]string{"a; b=2;"}, "a", "", false},
		{[]string{"b="}, "b", "", true},
		{nil, "b", "", false},
	}
	for _, tt := range tests {
		got, found := cookieValue(tt.lines, tt.name)
		if got != tt.want || found != tt.wantFound {
			t.Errorf("cookieValue(%q, %q) = %q, %v; want %q, %v", tt.lines, tt.name, got, found, tt.want, tt.wantFound)
		}
	}
}
