package balancer

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

// fixture builds servers with the given weights, named a, b, c, ... and
// backed by fresh states.
func fixture(weights ...int) []*upstream.Server {
	reg := upstream.NewRegistry()
	servers := make([]*upstream.Server, len(weights))
	for i, w := range weights {
		u := &url.URL{Scheme: "http", Host: fmt.Sprintf("10.0.0.%d:8080", i+1)}
		servers[i] = &upstream.Server{
			Name:   string(rune('a' + i)),
			URL:    u,
			Weight: w,
			State:  reg.State(upstream.Key("test", u.String())),
		}
	}
	return servers
}

// seeded returns a deterministic random source safe for concurrent use.
func seeded(seed uint64) func() uint64 {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	return func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Uint64()
	}
}

// fakeClock is a settable time source.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func mustNew(t testing.TB, name string, o Options) Policy {
	t.Helper()
	p, err := New(name, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// counts picks n times and counts the picks per server name.
func counts(p Policy, servers []*upstream.Server, r *http.Request, n int) map[string]int {
	c := map[string]int{}
	for range n {
		c[p.Pick(servers, r).Name]++
	}
	return c
}

// within reports whether got is within frac of want.
func within(got, want int, frac float64) bool {
	d := float64(got - want)
	return d <= frac*float64(want) && -d <= frac*float64(want)
}

func request(remote string) *http.Request {
	r, _ := http.NewRequest("GET", "http://proxy.test/", nil)
	r.RemoteAddr = remote
	return r
}
