package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// apiServer is what these tests read of a server in /api/upstreams.
type apiServer struct {
	Name      string `json:"name"`
	Healthy   bool   `json:"healthy"`
	Usable    bool   `json:"usable"`
	Reason    string `json:"reason"`
	Ejections uint64 `json:"ejections"`
	LastCheck *struct {
		Result string `json:"result"`
	} `json:"last_check"`
}

// apiServers returns the servers of the default upstream by name.
func apiServers(t *testing.T, adminAddr string) map[string]apiServer {
	t.Helper()
	res, err := http.Get("http://" + adminAddr + "/api/upstreams")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var state struct {
		Upstreams []struct {
			Servers []apiServer `json:"servers"`
		} `json:"upstreams"`
	}
	if err := json.NewDecoder(res.Body).Decode(&state); err != nil || len(state.Upstreams) != 1 {
		t.Fatalf("/api/upstreams: %v %+v", err, state)
	}
	out := map[string]apiServer{}
	for _, s := range state.Upstreams[0].Servers {
		out[s.Name] = s
	}
	return out
}

// A backend that starts after the proxy, as in any docker-compose or
// systemd boot, serves requests within 2 s of listening, with the seed
// config's health checks (10 s interval, thresholds 2 and 3): until its
// first check passes it is checked every fast interval (1 s), and being
// unproven, that one pass brings it in. Traffic flows from the start. The
// old code kept it out for healthy_threshold × interval = 20 s.
func TestBackendStartingAfterTheProxyServesAtOnce(t *testing.T) {
	addr := freeAddr(t)
	start := time.Now()
	p := startProxy(t, fmt.Sprintf(`admin: {listen: "127.0.0.1:0"}
servers:
  - url: http://%s
    name: late

load_balancing:
  strategy: round_robin

health_checks:
  interval: 10s
`, addr))
	// Clients from the first moment, a request every 2 ms: a steady
	// stream, not a load test.
	var served, other atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			res, err := http.Get("http://" + p.Addr() + "/")
			if err != nil {
				other.Add(1)
				continue
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == 200 {
				served.Add(1)
			} else {
				other.Add(1)
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	// The proxy's first check found nothing listening, and a second has
	// passed since the proxy started.
	waitFor(t, "the first check to fail", func() bool {
		s := apiServers(t, p.AdminAddr())["late"]
		return s.LastCheck != nil && !s.Healthy
	})
	waitFor(t, "a second since the proxy started", func() bool { return time.Since(start) >= time.Second })
	if served.Load() != 0 {
		t.Fatal("requests served before the backend listened")
	}

	listening := time.Now()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the address was taken meanwhile: %v", err)
	}
	late := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "late")
	}))
	late.Listener = ln
	late.Start()
	defer late.Close()

	const within = 2 * time.Second
	for served.Load() == 0 {
		if time.Since(listening) > within {
			t.Fatalf("no request served %v after the backend started listening (%d answered otherwise); want within %v",
				time.Since(listening).Round(time.Millisecond), other.Load(), within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("served %v after the backend started listening, %v after the proxy started",
		time.Since(listening).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// With no passive key written, a server that refuses connections is
// ejected (and each request it refused went to another server), shows so
// in the admin API, and is back once it answers again.
func TestDeadServerEjectedByDefault(t *testing.T) {
	a, b, c := backend(t, "a", nil), backend(t, "b", nil), backend(t, "c", nil)
	cAddr := c.Listener.Addr().String()
	p := startProxy(t, fmt.Sprintf(`admin: {listen: "127.0.0.1:0"}
servers:
  - {url: %s, name: a}
  - {url: %s, name: b}
  - {url: %s, name: c}

health_checks:
  interval: 2s
`, a.URL, b.URL, c.URL))
	var served, failed atomic.Int64
	var seen sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			client := &http.Client{}
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := client.Get("http://" + p.Addr() + "/")
				if err != nil {
					failed.Add(1)
					t.Log(err)
					continue
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					failed.Add(1)
					t.Logf("%d %q", res.StatusCode, body)
					continue
				}
				served.Add(1)
				seen.Store(string(body), time.Now())
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	waitFor(t, "traffic on c", func() bool { _, ok := seen.Load("c"); return ok })

	c.CloseClientConnections()
	c.Close()
	waitFor(t, "c ejected", func() bool {
		s := apiServers(t, p.AdminAddr())["c"]
		return s.Ejections > 0 && !s.Usable
	})
	s := apiServers(t, p.AdminAddr())["c"]
	t.Logf("c: %+v", s)
	if s.Ejections != 1 {
		t.Errorf("c ejected %d times, want 1", s.Ejections)
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests failed while c died; want none", n)
	}

	// c comes back on the same address.
	ln, err := net.Listen("tcp", cAddr)
	if err != nil {
		t.Skipf("c's address was taken meanwhile: %v", err)
	}
	back := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "c")
	}))
	back.Listener = ln
	back.Start()
	defer back.Close()
	returned := time.Now()
	// Up to the 10 s of a first ejection, and a loaded machine's delay:
	// longer than waitFor's 10 s.
	for deadline := time.Now().Add(40 * time.Second); !apiServers(t, p.AdminAddr())["c"].Usable; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("c not usable 40 s after it answered again: %+v", apiServers(t, p.AdminAddr())["c"])
		}
	}
	waitFor(t, "requests on c again", func() bool {
		at, ok := seen.Load("c")
		return ok && at.(time.Time).After(returned)
	})
	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests failed; want none", n)
	}
}
