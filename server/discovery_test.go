package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/metrics"
	"github.com/tbsphathuynh/proxy/upstream"
)

// discoveryYAML is an upstream "api" found in DNS at d, with every request
// routed to it.
func discoveryYAML(d *dnsmasq, dnsKeys string) string {
	return fmt.Sprintf(`upstreams:
  api:
    discovery:
      dns:
        resolver: %s
        refresh: 100ms
%s
    health_checks: {enabled: false}
routes:
  - match: {path_prefix: /}
    upstream: api
`, d.addr, dnsKeys)
}

// poolServers lists the servers of upstream name in the serving runtime.
func poolServers(s *Server, name string) map[string]*upstream.Server {
	out := map[string]*upstream.Server{}
	for _, sv := range s.rt.Load().upstreams[name].pool.Servers {
		out[sv.Name] = sv
	}
	return out
}

// load sends requests through the proxy from a few clients until stopped,
// counting those that did not get a 200.
type load struct {
	ok, failed atomic.Int64
	stop       context.CancelFunc
	wg         sync.WaitGroup
	lastErr    atomic.Value
}

func startLoad(t *testing.T, url string) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{stop: cancel}
	c := &http.Client{}
	for range 4 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				resp, err := c.Get(url)
				if err != nil {
					l.failed.Add(1)
					l.lastErr.Store(err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					l.failed.Add(1)
					l.lastErr.Store(resp.Status)
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	t.Cleanup(l.end)
	return l
}

func (l *load) end() { l.stop(); l.wg.Wait() }

// startPacedLoad is startLoad with n clients that each wait every between
// requests, for a load that runs a minute without taking the machine.
func startPacedLoad(t *testing.T, url string, n int, every time.Duration) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{stop: cancel}
	c := &http.Client{}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				resp, err := c.Get(url)
				if err != nil {
					l.failed.Add(1)
					l.lastErr.Store(err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					l.failed.Add(1)
					l.lastErr.Store(resp.Status)
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	t.Cleanup(l.end)
	return l
}

func TestDNSDiscoveryAddsAndDrainsServersUnderLoad(t *testing.T) {
	port, hits := loopbackBackends(t, 3, nil)
	d := startDNSMasq(t, hostsFile("api.test", "127.0.0.2", "127.0.0.3"))
	p := startProxy(t, apiYAML(discoveryYAML(d, fmt.Sprintf("        name: api.test\n        port: %d\n        slow_start: 1h", port))))

	b2, b3, b4 := fmt.Sprintf("127.0.0.2:%d", port), fmt.Sprintf("127.0.0.3:%d", port), fmt.Sprintf("127.0.0.4:%d", port)
	first := poolServers(p, "api")
	if _, ok := first[b2]; !ok || len(first) != 2 {
		t.Fatalf("servers at start = %v, want %s and %s", keys(first), b2, b3)
	}
	if first[b3].Ramping() {
		t.Errorf("a server found at start-up ramps; there was no traffic to protect it from")
	}
	kept := first[b3].State

	// Discovery owns its servers: the API may not change them.
	if src := adminServers(t, p)["api"][b3]["source"]; src != "dns" {
		t.Errorf("GET /api/upstreams: source %v, want dns", src)
	}
	for _, m := range []string{"PATCH", "DELETE"} {
		if code, _ := adminDo(t, p, m, "/api/upstreams/api/servers/"+b3, `{"weight": 3}`, apiToken); code != http.StatusConflict {
			t.Errorf("%s of a discovered server: %d, want 409", m, code)
		}
	}

	l := startLoad(t, "http://"+p.Addr()+"/")
	waitFor(t, "both first servers to get traffic", func() bool { return hits.get("127.0.0.2") > 0 && hits.get("127.0.0.3") > 0 })

	// 127.0.0.2 goes, 127.0.0.4 comes.
	d.setHosts(hostsFile("api.test", "127.0.0.3", "127.0.0.4"))
	waitFor(t, "the new set to serve", func() bool {
		ps := poolServers(p, "api")
		_, gone := ps[b2]
		return !gone && ps[b4] != nil
	})
	now := poolServers(p, "api")
	if now[b3].State != kept {
		t.Errorf("a server that stayed lost its state: the identity rule of reloads must hold")
	}
	if !now[b4].Ramping() {
		t.Errorf("a server that joined a serving pool does not ramp up under slow start")
	}
	waitFor(t, "the new server to get traffic", func() bool { return hits.get("127.0.0.4") > 0 })
	// Once the swap is done, the removed server gets nothing new. Its
	// requests chosen before the swap may still be on their way (each
	// worker has at most one): 200 answers later they have all arrived.
	flushed := l.ok.Load() + 200
	waitFor(t, "200 more requests", func() bool { return l.ok.Load() >= flushed })
	before := hits.get("127.0.0.2")
	target := l.ok.Load() + 200
	waitFor(t, "200 more requests", func() bool { return l.ok.Load() >= target })
	if after := hits.get("127.0.0.2"); after != before {
		t.Errorf("the removed server got %d requests after it left the pool", after-before)
	}
	l.end()
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed while servers came and went (last: %v)", n, n+l.ok.Load(), l.lastErr.Load())
	}
}

// dnsOutage is how long the DNS server stays down in
// TestDNSDiscoveryKeepsTheLastGoodSetWhenDNSFails: the minute.
const dnsOutage = time.Minute

// The DNS server stops for a minute while requests flow: with a refresh of
// 100ms hundreds of lookups fail, and the pool stays as it was, no
// request fails, every failure is counted, one WARN says so and /readyz
// names the stale set. Then DNS comes back with a change, which is picked
// up. The minute is wall time, so the test runs beside the others.
func TestDNSDiscoveryKeepsTheLastGoodSetWhenDNSFails(t *testing.T) {
	t.Parallel()
	port, hits := loopbackBackends(t, 3, nil)
	d := startDNSMasq(t, hostsFile("api.test", "127.0.0.2", "127.0.0.3"))
	var logs logBuffer
	p := startProxyLogging(t, apiYAML(discoveryYAML(d, fmt.Sprintf("        name: api.test\n        port: %d", port))), &logs)
	want := keys(poolServers(p, "api"))
	if len(want) != 2 {
		t.Fatalf("servers at start = %v, want two", want)
	}
	if code, body := adminDo(t, p, "GET", "/readyz", "", ""); code != 200 || strings.Contains(body, "stale") {
		t.Errorf("/readyz with DNS answering: %d %q, want ready and nothing stale", code, body)
	}
	errs := func() float64 { return discoveryErrors(t, p, "api") }
	l := startPacedLoad(t, "http://"+p.Addr()+"/", 2, 5*time.Millisecond)

	// An empty answer (the name has no address any more) is no set to
	// serve from either.
	d.setHosts("")
	waitFor(t, "an empty lookup to be counted", func() bool { return errs() >= 1 })
	d.stop()
	down := time.Now()
	base := errs()

	// The minute, checked every ten seconds: the set as it was, the
	// failures counted and rising.
	last := base
	for at := 10 * time.Second; at <= dnsOutage; at += 10 * time.Second {
		time.Sleep(time.Until(down.Add(at)))
		if got := keys(poolServers(p, "api")); !slices.Equal(got, want) {
			t.Fatalf("%v into the outage the servers are %v, want the last good set %v", at, got, want)
		}
		n := errs()
		if n <= last {
			t.Errorf("%v into the outage proxy_discovery_errors_total is %v, was %v: failed lookups are not counted", at, n, last)
		}
		last = n
	}
	if n := last - base; n < 60 {
		t.Errorf("%v failed lookups in a minute with a 100ms refresh, want dozens", n)
	}
	// Three refreshes of 100ms without a good lookup: /readyz says so, and
	// stays 200, since the last good set serves.
	if code, body := adminDo(t, p, "GET", "/readyz", "", ""); code != 200 || !strings.Contains(body, "stale: upstream api: servers from DNS last confirmed") {
		t.Errorf("/readyz after a minute without DNS: %d %q, want 200 naming the stale set", code, body)
	}
	if n := strings.Count(logs.String(), "discovery lookup failed"); n != 1 {
		t.Errorf("%d WARN lines for one outage, want 1:\n%s", n, logs.String())
	}
	if hits.get("127.0.0.2") == 0 || hits.get("127.0.0.3") == 0 {
		t.Errorf("hits = %v; both servers of the last good set should serve", hits.n)
	}
	during := l.ok.Load()

	// DNS is back, with a change: 127.0.0.2 goes, 127.0.0.4 comes.
	d.setHosts(hostsFile("api.test", "127.0.0.3", "127.0.0.4"))
	d.restart()
	b3, b4 := fmt.Sprintf("127.0.0.3:%d", port), fmt.Sprintf("127.0.0.4:%d", port)
	waitFor(t, "the changed set once DNS is back", func() bool {
		return slices.Equal(keys(poolServers(p, "api")), []string{b3, b4})
	})
	waitFor(t, "/readyz to stop calling the set stale", func() bool {
		code, body := adminDo(t, p, "GET", "/readyz", "", "")
		return code == 200 && !strings.Contains(body, "stale")
	})
	waitFor(t, "the new server to get traffic", func() bool { return hits.get("127.0.0.4") > 0 })
	if !strings.Contains(logs.String(), "discovery lookup works again") {
		t.Errorf("no INFO when DNS came back:\n%s", logs.String())
	}
	l.end()
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed while DNS was down (last: %v)", n, n+l.ok.Load(), l.lastErr.Load())
	}
	t.Logf("%v failed lookups, %d requests served during the outage, %d in all", last-base, during, l.ok.Load())
}

func keys(m map[string]*upstream.Server) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// discoveryErrors reads proxy_discovery_errors_total{upstream=name}.
func discoveryErrors(t *testing.T, s *Server, name string) float64 {
	t.Helper()
	mfs, err := s.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metrics.DiscoveryErrorsTotal {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "upstream" && lp.GetValue() == name {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestDNSDiscoverySRVWeightsAndPriorities(t *testing.T) {
	port, hits := loopbackBackends(t, 3, nil)
	// Weights 1 and 3 at priority 0; 127.0.0.4 at priority 1, a backup.
	d := startDNSMasq(t, hostsFile("a.test", "127.0.0.2")+hostsFile("b.test", "127.0.0.3")+hostsFile("c.test", "127.0.0.4"),
		fmt.Sprintf("--srv-host=_http._tcp.api.test,a.test,%d,0,1", port),
		fmt.Sprintf("--srv-host=_http._tcp.api.test,b.test,%d,0,3", port),
		fmt.Sprintf("--srv-host=_http._tcp.api.test,c.test,%d,1,5", port))
	p := startProxy(t, strings.Replace(discoveryYAML(d, "        srv: _http._tcp.api.test"),
		"    health_checks:", "    load_balancing: {strategy: weighted_round_robin}\n    health_checks:", 1))

	ps := poolServers(p, "api")
	if len(ps) != 3 {
		t.Fatalf("servers = %v, want three", keys(ps))
	}
	c := ps[fmt.Sprintf("127.0.0.4:%d", port)]
	if c == nil || !c.Backup || c.Weight != 5 {
		t.Fatalf("the priority-1 target = %+v, want a backup of weight 5", c)
	}
	// The measure: ±10% over 10,000 requests, sent by a few
	// workers over kept-alive connections so it takes a second or two.
	const n, workers = 10000, 8
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	t.Cleanup(client.CloseIdleConnections)
	var sent, bad atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent.Add(1) <= n {
				res, err := client.Get("http://" + p.Addr() + "/")
				if err != nil {
					bad.Add(1)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if b := bad.Load(); b != 0 {
		t.Fatalf("%d of %d requests failed", b, n)
	}
	a, b := hits.get("127.0.0.2"), hits.get("127.0.0.3")
	if want := n / 4; a < want*9/10 || a > want*11/10 {
		t.Errorf("weight-1 server got %d of %d requests, want %d ±10%%", a, n, want)
	}
	if want := n * 3 / 4; b < want*9/10 || b > want*11/10 {
		t.Errorf("weight-3 server got %d of %d requests, want %d ±10%%", b, n, want)
	}
	if got := hits.get("127.0.0.4"); got != 0 {
		t.Errorf("the backup got %d requests while both primaries were usable", got)
	}
}

// A server that leaves DNS drains: a slow request it is serving when the
// new set is applied finishes with its full answer, and it gets no new
// request.
func TestDNSDiscoveryRemovedServerFinishesItsInFlightRequests(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan string, 64)
	port, hits := loopbackBackends(t, 3, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			return
		}
		arrived <- w.Header().Get("X-Backend")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "done")
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	d := startDNSMasq(t, hostsFile("api.test", "127.0.0.2", "127.0.0.3"))
	p := startProxy(t, apiYAML(discoveryYAML(d, fmt.Sprintf("        name: api.test\n        port: %d", port))))

	// Slow requests until one is on 127.0.0.2, the server about to go.
	type answer struct {
		code int
		body string
		err  error
	}
	var answers []chan answer
	for on := ""; on != "127.0.0.2"; {
		if len(answers) == 20 {
			t.Fatal("20 slow requests and none reached 127.0.0.2")
		}
		ch := make(chan answer, 1)
		answers = append(answers, ch)
		go func() {
			res, err := http.Get("http://" + p.Addr() + "/slow")
			if err != nil {
				ch <- answer{err: err}
				return
			}
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			ch <- answer{res.StatusCode, string(b), err}
		}()
		on = <-arrived
	}
	d.setHosts(hostsFile("api.test", "127.0.0.3", "127.0.0.4"))
	b2 := fmt.Sprintf("127.0.0.2:%d", port)
	waitFor(t, "127.0.0.2 to leave the pool", func() bool { return poolServers(p, "api")[b2] == nil })
	before := hits.get("127.0.0.2")
	for i := range 50 {
		if code, _, h := get(t, http.DefaultClient, "http://"+p.Addr()+"/"); code != 200 || h.Get("X-Backend") == "127.0.0.2" {
			t.Fatalf("request %d after the change: %d from %s", i, code, h.Get("X-Backend"))
		}
	}
	if after := hits.get("127.0.0.2"); after != before {
		t.Errorf("the removed server got %d new requests", after-before)
	}
	close(release)
	for i, ch := range answers {
		if a := <-ch; a.err != nil || a.code != 200 || a.body != "done" {
			t.Errorf("slow request %d: %d %q %v, want it finished by its server", i, a.code, a.body, a.err)
		}
	}
}
