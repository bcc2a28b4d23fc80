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
	const rate, burst = 50, 50
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
  redis: {address: %s, timeout: 100ms}
  on_store_error: allow
`, addr, admin, backend, rate, burst, rs.Addr))
		p := start(t, "-config", cfg)
		p.waitLog(t, "proxy listening")
		addrs = append(addrs, addr)
	}
	client := &http.Client{Timeout: 5 * time.Second}
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

	// One second of requests spread over both proxies from four clients.
	// The limit refills while requests are under way, so the count is
	// bounded by the burst plus the rate over the time the last request was
	// sent (below) and over the time the last answer came (above): on a
	// loaded machine the two differ by a slow request's time.
	var mu sync.Mutex
	allowed, refused := 0, 0
	var lastSent time.Time
	start := time.Now()
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Since(start) < time.Second; i++ {
				sent := time.Now()
				s, _ := send(addrs[(c+i)%2])
				mu.Lock()
				if s == 200 {
					allowed++
				} else {
					refused++
				}
				if sent.After(lastSent) {
					lastSent = sent
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	least, most := burst+rate*lastSent.Sub(start).Seconds(), burst+rate*elapsed
	if refused == 0 || float64(allowed) < least*0.9 || float64(allowed) > most*1.1 {
		t.Errorf("two proxies allowed %d and refused %d in %.2fs, want %.0f to %.0f ±10%% (one shared limit)", allowed, refused, elapsed, least, most)
	}

	// Redis gone: on_store_error allow keeps answering, each within the
	// Redis timeout plus the cost of proxying.
	rs.Stop()
	var worst time.Duration
	for i := range 40 {
		s, d := send(addrs[i%2])
		if s != 200 && s != 429 {
			t.Fatalf("with Redis down: status %d", s)
		}
		worst = max(worst, d)
	}
	if worst > 600*time.Millisecond {
		t.Errorf("slowest request with Redis down took %v; the Redis timeout is 100ms", worst)
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
