package discovery

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// zone answers queries from records written as zone-file lines, the way a
// DNS server with those records would: each question gets the records of
// its name and type.
type zone struct {
	rrs   []string
	rcode int
	// fail, when set, is the error of every exchange: no server answered.
	fail error
}

func (z zone) resolver(t testing.TB) *Resolver {
	t.Helper()
	var rrs []dns.RR
	for _, line := range z.rrs {
		rr, err := dns.NewRR(line)
		if err != nil {
			t.Fatalf("record %q: %v", line, err)
		}
		rrs = append(rrs, rr)
	}
	return &Resolver{Server: "dns.test:53", exchange: func(_ context.Context, m *dns.Msg, _, _ string, _ time.Duration) (*dns.Msg, error) {
		if z.fail != nil {
			return nil, z.fail
		}
		resp := new(dns.Msg)
		resp.SetReply(m)
		resp.Rcode = z.rcode
		q := m.Question[0]
		for _, rr := range rrs {
			if h := rr.Header(); h.Name == q.Name && h.Rrtype == q.Qtype {
				resp.Answer = append(resp.Answer, rr)
			}
		}
		return resp, nil
	}}
}

func tgt(addr string, port, weight int, backup bool) Target {
	return Target{Addr: netip.MustParseAddr(addr), Port: port, Weight: weight, Backup: backup}
}

func TestLookup(t *testing.T) {
	apiA := Source{Name: "api.test", Port: 8080}
	apiSRV := Source{SRV: "_http._tcp.api.test"}
	cases := []struct {
		name    string
		src     Source
		zone    zone
		want    []Target
		ttl     time.Duration
		err     error // matched with errors.Is; any error when errAny
		errAny  bool
		notZero bool
	}{{
		name: "A and AAAA: a server per address, sorted, on the source's port",
		src:  apiA,
		zone: zone{rrs: []string{"api.test. 30 IN A 10.0.0.2", "api.test. 5 IN A 10.0.0.1", "api.test. 60 IN AAAA 2001:db8::1"}},
		want: []Target{tgt("10.0.0.1", 8080, 1, false), tgt("10.0.0.2", 8080, 1, false), tgt("2001:db8::1", 8080, 1, false)},
		ttl:  5 * time.Second,
	}, {
		name: "an IPv4-mapped AAAA is its IPv4 address, listed once",
		src:  apiA,
		zone: zone{rrs: []string{"api.test. 30 IN A 10.0.0.1", "api.test. 30 IN AAAA ::ffff:10.0.0.1"}},
		want: []Target{tgt("10.0.0.1", 8080, 1, false)},
		ttl:  30 * time.Second,
	}, {
		name: "TTL 0 is kept as 0, for the watcher's floor to bound",
		src:  apiA,
		zone: zone{rrs: []string{"api.test. 0 IN A 10.0.0.1"}},
		want: []Target{tgt("10.0.0.1", 8080, 1, false)},
		ttl:  0,
	}, {
		name: "no record: empty, not a set",
		src:  apiA,
		zone: zone{rrs: []string{"other.test. 30 IN A 10.0.0.1"}},
		err:  ErrEmpty,
	}, {
		name: "NXDOMAIN: empty, not a set",
		src:  apiA,
		zone: zone{rcode: dns.RcodeNameError},
		err:  ErrEmpty,
	}, {
		name:   "SERVFAIL is a failure, not an empty set",
		src:    apiA,
		zone:   zone{rcode: dns.RcodeServerFailure, rrs: []string{"api.test. 30 IN A 10.0.0.1"}},
		errAny: true,
	}, {
		name:   "no server answers",
		src:    apiA,
		zone:   zone{fail: errors.New("i/o timeout")},
		errAny: true,
	}, {
		name: "SRV: the lowest priority is primary, higher ones backups; weights carried, 0 rounded up to 1",
		src:  apiSRV,
		zone: zone{rrs: []string{
			"_http._tcp.api.test. 60 IN SRV 10 0 9001 a.test.",
			"_http._tcp.api.test. 60 IN SRV 10 5 9002 b.test.",
			"_http._tcp.api.test. 60 IN SRV 20 7 9003 c.test.",
			"a.test. 60 IN A 10.0.0.1", "b.test. 20 IN A 10.0.0.2", "c.test. 60 IN A 10.0.0.3",
		}},
		want: []Target{tgt("10.0.0.1", 9001, 1, false), tgt("10.0.0.2", 9002, 5, false), tgt("10.0.0.3", 9003, 7, true)},
		ttl:  20 * time.Second, // the shortest of the SRV and address records
	}, {
		name: "SRV: a target without an address is skipped; the next priority becomes primary",
		src:  apiSRV,
		zone: zone{rrs: []string{
			"_http._tcp.api.test. 60 IN SRV 0 1 9001 gone.test.",
			"_http._tcp.api.test. 60 IN SRV 1 2 9002 b.test.",
			"_http._tcp.api.test. 60 IN SRV 1 3 9003 c.test.",
			"_http._tcp.api.test. 60 IN SRV 2 4 9004 d.test.",
			"b.test. 60 IN A 10.0.0.2", "c.test. 60 IN A 10.0.0.3", "d.test. 60 IN A 10.0.0.4",
		}},
		want: []Target{tgt("10.0.0.2", 9002, 2, false), tgt("10.0.0.3", 9003, 3, false), tgt("10.0.0.4", 9004, 4, true)},
		ttl:  60 * time.Second,
	}, {
		name: "SRV: one address and port named twice is one server, the primary",
		src:  apiSRV,
		zone: zone{rrs: []string{
			"_http._tcp.api.test. 60 IN SRV 5 1 9001 a.test.",
			"_http._tcp.api.test. 60 IN SRV 0 2 9001 alias.test.",
			"a.test. 60 IN A 10.0.0.1", "alias.test. 60 IN A 10.0.0.1",
		}},
		want: []Target{tgt("10.0.0.1", 9001, 2, false)},
		ttl:  60 * time.Second,
	}, {
		name: `SRV: target "." says the service is not offered`,
		src:  apiSRV,
		zone: zone{rrs: []string{"_http._tcp.api.test. 60 IN SRV 0 0 0 ."}},
		err:  ErrEmpty,
	}, {
		name: "SRV: no target has an address",
		src:  apiSRV,
		zone: zone{rrs: []string{"_http._tcp.api.test. 60 IN SRV 0 1 9001 gone.test."}},
		err:  ErrEmpty,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ttl, err := tc.zone.resolver(t).Lookup(context.Background(), tc.src)
			switch {
			case tc.errAny:
				if err == nil || errors.Is(err, ErrEmpty) {
					t.Fatalf("err = %v, want a failure that is not ErrEmpty", err)
				}
				return
			case tc.err != nil:
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("targets (-want +got):\n%s", diff)
			}
			if ttl != tc.ttl {
				t.Errorf("ttl = %v, want %v", ttl, tc.ttl)
			}
		})
	}
}
