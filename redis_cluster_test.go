package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/internal/redistest"
	"github.com/tbsphathuynh/proxy/internal/testcert"
)

// TestFourProxiesShareOneClusterLimit runs four proxy processes against a
// real 3-master Redis Cluster: together they allow one limit per key,
// whichever master holds it; with the master of a key killed they decide
// locally, counted in proxy_rate_limit_store_errors_total, and go back to
// the shared limit by themselves once its replica has taken over.
func TestFourProxiesShareOneClusterLimit(t *testing.T) {
	c := redistest.NewCluster(t)
	backend := startBackend(t)
	// A slow refill next to the burst: the count allowed depends on how
	// many requests were sent far more than on how long that took, so a
	// stalled machine cannot move it out of bounds.
	const rate, burst = 1, 50
	adminAddr := freePort(t)
	var addrs []string
	var procs []*proc
	for i := range 4 {
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
  redis: {addresses: [%s], timeout: 1s}
`, addr, admin, backend, rate, burst, strings.Join(c.Addrs(), ", ")))
		p := start(t, "-config", cfg)
		p.waitLog(t, "proxy listening")
		addrs = append(addrs, addr)
		procs = append(procs, p)
	}
	// One tenant on each master.
	tenants := map[int]string{}
	for i := 0; len(tenants) < len(c.Masters); i++ {
		k := "tenant-" + strconv.Itoa(i)
		tenants[c.MasterIndex(t, "proxy:rl:default:"+k)] = k
	}
	client := &http.Client{Timeout: 10 * time.Second}
	send := func(addr, tenant string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Header.Set("X-Api-Key", tenant)
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// Three times the burst of requests per tenant, spread over the four
	// proxies by eight clients.
	const perTenant = 3 * burst
	var mu sync.Mutex
	allowed := map[string]int{}
	start := time.Now()
	var lastSent time.Time
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < perTenant*len(tenants); i += 8 {
				tenant := tenants[i%len(tenants)]
				sent := time.Now()
				code := send(addrs[i%len(addrs)], tenant)
				mu.Lock()
				if code == http.StatusOK {
					allowed[tenant]++
				}
				if sent.After(lastSent) {
					lastSent = sent
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	least, most := burst+rate*lastSent.Sub(start).Seconds(), burst+rate*elapsed.Seconds()
	for master, tenant := range tenants {
		got := float64(allowed[tenant])
		t.Logf("master %d: %s allowed %v of %d in %v across 4 proxies; one limit allows %.0f to %.0f", master, tenant, got, perTenant, elapsed.Round(time.Millisecond), least, most)
		if got < 0.9*least || got > 1.1*most {
			t.Errorf("%s (on master %d): allowed %v, want %.0f to %.0f ± 10%%: one limit shared by the 4 proxies", tenant, master, got, least, most)
		}
	}

	// Kill the master of one tenant while the first proxy serves it.
	tenant := tenants[1]
	killed := time.Now()
	c.Masters[1].Stop()
	p := procs[0]
	recovered := false
	deadline := time.Now().Add(30 * time.Second)
	for !recovered {
		if time.Now().After(deadline) {
			t.Fatalf("no shared limiting 30s after the master was killed:\n%s", metricsOf(t, adminAddr))
		}
		for range 20 {
			send(addrs[0], tenant)
		}
		m := metricsOf(t, adminAddr)
		// Back on the store after at least one switch away; a loaded
		// machine may see the failover flap (down, up, down, up).
		sw := switchesRE.FindStringSubmatch(m)
		recovered = strings.Contains(m, `proxy_rate_limit_store_up{route="default"} 1`) &&
			sw != nil && sw[1] != "0"
	}
	t.Logf("shared limiting back %v after the master was killed", time.Since(killed).Round(time.Millisecond))
	p.waitLog(t, `rate limit store unavailable; deciding locally`)
	p.waitLog(t, `rate limit store recovered`)
	m := metricsOf(t, adminAddr)
	local := regexp.MustCompile(`proxy_rate_limit_store_errors_total\{route="default"\} (\d+)`).FindStringSubmatch(m)
	if local == nil || local[1] == "0" {
		t.Errorf("proxy_rate_limit_store_errors_total does not count the decisions made locally:\n%s", m)
	} else {
		t.Logf("%s decisions made locally", local[1])
	}
}

func metricsOf(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// -validate makes a TLS handshake with the Redis of a rate limit: a CA
// that did not sign the server's certificate is refused, naming ca_file at
// its line; the right one passes.
func TestValidateRedisTLSCA(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "redis.crt"), filepath.Join(dir, "redis.key")
	other := filepath.Join(dir, "other.crt")
	for _, f := range [][2]string{{cert, key}, {other, filepath.Join(dir, "other.key")}} {
		if err := testcert.Write(f[0], f[1], time.Now().Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	srv := redistest.NewServerWith(t, redistest.Options{TLS: &redistest.TLS{CertFile: cert, KeyFile: key, CAFile: cert}})
	config := func(ca string) string {
		return writeConfig(t, fmt.Sprintf(`servers: [{url: http://127.0.0.1:1}]
rate_limit:
  requests_per_second: 10
  store: redis
  redis:
    address: %s
    tls:
      ca_file: %s
`, srv.Addr, ca))
	}
	f := config(other)
	code, _, stderr := runBinary(t, "-validate", "-config", f)
	want := fmt.Sprintf("%s:8:16: rate_limit.redis.tls.ca_file: the certificate of %s is not signed by a CA in %q", f, srv.Addr, other)
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("-validate with the wrong CA: exit %d, %q; want exit 1 and %q", code, stderr, want)
	}
	if code, _, stderr := runBinary(t, "-validate", "-config", config(cert)); code != 0 {
		t.Errorf("-validate with the right CA: exit %d, %q", code, stderr)
	}
}

var switchesRE = regexp.MustCompile(`proxy_rate_limit_store_switches_total\{route="default"\} ([0-9]+)`)
