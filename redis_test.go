package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tbsphathuynh/proxy/internal/redistest"
)

// TestTwoProxiesShareOneRedisLimit runs two proxy processes against one
// real redis-server: together they must allow one limit, not one each;
// with Redis gone they keep answering quickly; with Redis back they share
// again.
func TestTwoProxiesShareOneRedisLimit(t *testing.T) {
	rs := redistest.NewServer(t)
	backend := startBackend(t)
	// burst/rate is 25 s, longer than any stall of a loaded machine, so the
	// bounds below hold by construction. The Redis timeout is long for the
	// same reason: at 100ms, slow answers beside other work put the proxies
	// on their local limiters, each allowing a burst of its own.
	const rate, burst = 2, 50
	const redisTimeout = 10 * time.Second
	var addrs []string
	adminAddr := freePort(t)
	for i := range 2 {
		addr := freePort(t)
		admin := `""`
		if i == 0 {
			admin = adminAddr
		}
		cfg := writeConfig(t, fmt.Sprintf(`listen: %s
admin: {listen: %s}
logging: {access_log: "off"}
servers: [{url: %s}]
rate_limit:
  requests_per_second: %d
  burst: %d
  key: "header:X-Api-Key"
  store: redis
  redis: {address: %s, timeout: %s}
  on_store_error: allow
`, addr, admin, backend, rate, burst, rs.Addr, redisTimeout))
		p := start(t, "-config", cfg)
		p.waitLog(t, "proxy listening")
		addrs = append(addrs, addr)
	}
	client := &http.Client{Timeout: 5 * redisTimeout}
	send := func(addr string) (int, time.Duration) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Header.Set("X-Api-Key", "tenant-1")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}

	// Four clients, alternating between the proxies, each ask until they
	// are refused. A refusal means the shared key's whole burst was spent,
	// so at least burst were allowed; at most burst plus rate per second
	// of Redis' clock, all of which passed within elapsed. Two limits of
	// their own would allow at least 2*burst.
	var mu sync.Mutex
	allowed, refused := 0, 0
	start := time.Now()
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			for i := 0; i < 1000; i++ {
				s, _ := send(addrs[(c+i)%2])
				mu.Lock()
				if s == 200 {
					allowed++
				} else {
					refused++
				}
				mu.Unlock()
				if s != 200 {
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	most := burst + int(rate*elapsed.Seconds()) + 1
	if refused != 4 || allowed < burst || allowed > most {
		t.Errorf("two proxies allowed %d and refused %d in %v, want %d to %d allowed and each of 4 clients refused once (one shared limit)", allowed, refused, elapsed, burst, most)
	}

	// Redis gone: on_store_error allow keeps answering, and a refused
	// connection costs no request the Redis timeout.
	rs.Stop()
	var worst time.Duration
	for i := range 40 {
		s, d := send(addrs[i%2])
		if s != 200 && s != 429 {
			t.Fatalf("with Redis down: status %d", s)
		}
		worst = max(worst, d)
	}
	if worst >= redisTimeout {
		t.Errorf("slowest request with Redis down took %v, as long as the Redis timeout", worst)
	}

	// Redis back: decisions go to it again, which shows as keys in Redis.
	rs.Start()
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rc.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		send(addrs[0])
		send(addrs[1])
		keys, _ := rc.Keys(context.Background(), "proxy:rl:*").Result()
		if len(keys) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("shared limiting did not resume after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Each switch, to the local stand-in and back, was counted once.
	wantLine := `proxy_rate_limit_store_switches_total{route="default"} 2`
	deadline = time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), wantLine) && strings.Contains(string(b), `proxy_rate_limit_store_up{route="default"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %s and store_up 1:\n%s", wantLine, storeLines(string(b)))
		}
		send(addrs[0])
		time.Sleep(50 * time.Millisecond)
	}
}

func startBackend(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// storeLines picks the rate-limit store's lines out of a /metrics page.
func storeLines(metrics string) string {
	var out []string
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, "proxy_rate_limit_store") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
