package discovery

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzLookup answers every query of a lookup with one message, as a DNS
// server might send it, and checks that what Lookup makes of it is a set
// the proxy can serve from: no panic, at least one target, sorted and
// without duplicates, weights of at least 1, and among SRV targets at
// least one primary; or an error.
func FuzzLookup(f *testing.F) {
	seed := func(srv bool, rcode int, lines ...string) {
		m := new(dns.Msg)
		m.Response, m.Rcode = true, rcode
		for _, l := range lines {
			rr, err := dns.NewRR(l)
			if err != nil {
				f.Fatal(err)
			}
			m.Answer = append(m.Answer, rr)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, srv)
	}
	seed(false, 0, "api.test. 30 IN A 10.0.0.1", "api.test. 30 IN AAAA 2001:db8::1")
	seed(false, 0, "api.test. 30 IN CNAME real.test.", "real.test. 0 IN A 10.0.0.1", "x.test. 1 IN AAAA ::ffff:10.0.0.1")
	seed(false, 3)
	seed(false, 2, "api.test. 30 IN A 10.0.0.1")
	seed(true, 0, "_http._tcp.api.test. 60 IN SRV 0 0 80 a.test.", "_http._tcp.api.test. 60 IN SRV 1 9 81 b.test.",
		"a.test. 5 IN A 10.0.0.1", "b.test. 5 IN A 10.0.0.2")
	// The lowest priority has no address: the next is primary.
	seed(true, 0, "_http._tcp.api.test. 60 IN SRV 0 1 80 gone.test.", "_http._tcp.api.test. 60 IN SRV 1 1 81 b.test.", "b.test. 5 IN A 10.0.0.2")
	seed(true, 0, "_http._tcp.api.test. 60 IN SRV 0 0 0 .")
	seed(true, 0, "_http._tcp.api.test. 60 IN SRV 65535 65535 65535 a.test.", "a.test. 4294967295 IN A 0.0.0.0")
	f.Fuzz(func(t *testing.T, answer []byte, srv bool) {
		msg := new(dns.Msg)
		if err := msg.Unpack(answer); err != nil {
			return
		}
		r := &Resolver{Server: "dns.test:53", exchange: func(_ context.Context, q *dns.Msg, _, _ string, _ time.Duration) (*dns.Msg, error) {
			resp := msg.Copy()
			resp.Id, resp.Question = q.Id, q.Question
			return resp, nil
		}}
		src := Source{Name: "api.test", Port: 8080}
		if srv {
			src = Source{SRV: "_http._tcp.api.test"}
		}
		ts, ttl, err := r.Lookup(context.Background(), src)
		if err != nil {
			if ts != nil {
				t.Fatalf("targets %v beside the error %v", ts, err)
			}
			return
		}
		if len(ts) == 0 {
			t.Fatal("a lookup found nothing and reported no error: the pool would be emptied")
		}
		if ttl < 0 {
			t.Errorf("ttl %v of a set found in records", ttl)
		}
		primary := false
		for i, tg := range ts {
			if !tg.Addr.IsValid() || tg.Addr.Is4In6() || tg.Weight < 1 || tg.Port < 0 || tg.Port > 65535 {
				t.Errorf("target %+v", tg)
			}
			if !srv && (tg.Port != 8080 || tg.Weight != 1 || tg.Backup) {
				t.Errorf("an address record made %+v", tg)
			}
			primary = primary || !tg.Backup
			if i > 0 && (ts[i-1].Addr == tg.Addr && ts[i-1].Port == tg.Port) {
				t.Errorf("%s listed twice", tg.HostPort())
			}
		}
		if !primary {
			t.Errorf("every target is a backup: %v", ts)
		}
		if !slices.IsSortedFunc(ts, func(a, b Target) int {
			if c := a.Addr.Compare(b.Addr); c != 0 {
				return c
			}
			return a.Port - b.Port
		}) {
			t.Errorf("targets not sorted: %v", ts)
		}
	})
}
