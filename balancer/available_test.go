package balancer

import (
	"net/http"
	"sync"
	"testing"

	"github.com/tbsphathuynh/proxy/upstream"
)

// fixed is a Policy that always picks servers[i].
type fixed int

func (f fixed) Pick(servers []*upstream.Server, _ *http.Request) *upstream.Server {
	return servers[int(f)]
}

func TestPickAvailable(t *testing.T) {
	tests := []struct {
		name     string
		inFlight []int64 // per server; every cap is 2
		pick     int
		tried    []int
		want     string // "" means nil
	}{
		{"pick has room", []int64{0, 0, 0}, 1, nil, "b"},
		{"pick full, next has room", []int64{0, 2, 0}, 1, nil, "c"},
		{"wraps around", []int64{0, 2, 2}, 1, nil, "a"},
		{"all full", []int64{2, 2, 2}, 0, nil, ""},
		{"pick tried", []int64{0, 0, 0}, 0, []int{0}, "b"},
		{"all tried or full", []int64{0, 2, 0}, 0, []int{0, 2}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servers := fixture(1, 1, 1)
			var tried []*upstream.Server
			for i, s := range servers {
				s.MaxConns = 2
				for range tt.inFlight[i] {
					s.Acquire()
				}
			}
			for _, i := range tt.tried {
				tried = append(tried, servers[i])
			}
			got := PickExcept(fixed(tt.pick), servers, nil, tried)
			if name(got) != tt.want {
				t.Errorf("PickExcept = %s, want %q", name(got), tt.want)
			}
			if tried == nil {
				if got2 := PickAvailable(fixed(tt.pick), servers, nil); got2 != got {
					t.Errorf("PickAvailable = %s, PickExcept = %s", name(got2), name(got))
				}
			}
		})
	}
	if PickAvailable(fixed(0), nil, nil) != nil {
		t.Error("PickAvailable on no servers is not nil")
	}
}

func name(s *upstream.Server) string {
	if s == nil {
		return ""
	}
	return s.Name
}

func TestPickAcquireHardCap(t *testing.T) {
	servers := fixture(1, 1, 1)
	for _, s := range servers {
		s.MaxConns = 5
	}
	p := mustNew(t, "random", Options{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for range 100 {
		wg.Go(func() {
			if PickAcquire(p, servers, nil, nil) != nil {
				mu.Lock()
				got++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if got != 15 {
		t.Errorf("%d requests admitted, want exactly 3 servers × 5", got)
	}
	for _, s := range servers {
		if s.InFlight() != 5 {
			t.Errorf("%s has %d in flight, want 5", s.Name, s.InFlight())
		}
	}
}
