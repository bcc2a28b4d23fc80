package balancer

import (
	"net/http"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

// strategyCases lists every registered strategy with options that take
// its most expensive path.
var strategyCases = []struct {
	name string
	opts Options
}{
	{"round_robin", Options{}},
	{"weighted_round_robin", Options{}},
	{"least_connections", Options{}},
	{"ip_hash", Options{}},
	{"consistent_hash", Options{HashKey: "ip"}},
	{"consistent_hash", Options{HashKey: "cookie:session"}},
	{"consistent_hash", Options{HashKey: "uri"}},
	{"random", Options{}},
	{"power_of_two", Options{}},
	{"least_latency", Options{}},
}

func caseName(name string, o Options) string {
	if o.HashKey != "" {
		return name + "/" + o.HashKey
	}
	return name
}

// benchPool is 8 servers of mixed weights with some load and latency;
// with ramping, one of them is in its slow-start ramp, which costs a clock
// read per pick.
func benchPool(ramping bool) []*upstream.Server {
	servers := fixture(1, 2, 1, 3, 1, 1, 2, 1)
	for i, s := range servers {
		acquire(s, i%3)
		s.ObserveLatency(time.Duration(i+1) * time.Millisecond)
	}
	if ramping {
		servers[5].SlowStart = time.Hour
		servers[5].SetHealthy(false, "bench", time.Now())
		servers[5].SetHealthy(true, "bench", time.Now())
	}
	return servers
}

func benchRequest() *http.Request {
	r, _ := http.NewRequest("GET", "http://proxy.test/items/42?page=3", nil)
	r.RemoteAddr = "198.51.100.23:54321"
	r.Header.Set("Cookie", "theme=dark; session=8f14e45fceea167a; lang=en")
	return r
}

func TestPickAllocs(t *testing.T) {
	servers, r := benchPool(true), benchRequest()
	for _, c := range strategyCases {
		p := mustNew(t, c.name, c.opts)
		if n := testing.AllocsPerRun(1000, func() { p.Pick(servers, r) }); n != 0 {
			t.Errorf("%s: %v allocs per pick, want 0", caseName(c.name, c.opts), n)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	servers, r := benchPool(false), benchRequest()
	for _, c := range strategyCases {
		p := mustNew(b, c.name, c.opts)
		b.Run(caseName(c.name, c.opts), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Pick(servers, r)
			}
		})
	}
}

func BenchmarkPickParallel(b *testing.B) {
	servers, r := benchPool(false), benchRequest()
	for _, c := range strategyCases {
		p := mustNew(b, c.name, c.opts)
		b.Run(caseName(c.name, c.opts), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p.Pick(servers, r)
				}
			})
		})
	}
}

func BenchmarkPickRamping(b *testing.B) {
	servers, r := benchPool(true), benchRequest()
	for _, c := range strategyCases {
		p := mustNew(b, c.name, c.opts)
		b.Run(caseName(c.name, c.opts), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Pick(servers, r)
			}
		})
	}
}
