package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/metrics"
)

// BenchmarkMirrorLatency measures what a mirror costs the client: four
// proxies in front of one fast server, one without a mirror, and three
// mirroring every request: to a server that answers at once, to one that
// answers after 200 ms, and to one that is down (connections refused).
// The first two tell the copy's CPU cost from the mirror's latency. An
// open-loop load of 200 requests a second goes to each in turn, one second at a
// time, the order rotating every round so that neither gets the quieter
// moments of a shared machine; the percentiles are over all the rounds of
// each. Run it once (docs/performance.md, "Mirroring"):
//
//	go test -run '^$' -bench MirrorLatency -benchtime 1x ./server/
func BenchmarkMirrorLatency(b *testing.B) {
	const (
		rate   = 200
		round  = time.Second
		rounds = 30
	)
	main := backend(b, "main", nil)
	fast := backend(b, "fast", nil)
	slow := backend(b, "slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond) // the mirror upstream's latency under test
		io.WriteString(w, "slow")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	mirrored := func(to string) string {
		return "servers: [{url: " + main.URL + "}]\nupstreams:\n  shadow:\n    servers: [{url: " + to + "}]\n    health_checks: {enabled: false}\n" +
			"routes:\n  - name: app\n    match: {path_prefix: /}\n    upstream: default\n    policies:\n      - mirror: {upstream: shadow}\n"
	}
	modes := []struct {
		name string
		p    *Server
		lat  []time.Duration
		// p99s holds the p99 of each round.
		p99s []time.Duration
	}{
		{name: "none", p: startProxy(b, "servers: [{url: "+main.URL+"}]\n")},
		{name: "fast", p: startProxy(b, mirrored(fast.URL))},
		{name: "slow", p: startProxy(b, mirrored(slow.URL))},
		{name: "dead", p: startProxy(b, mirrored(dead))},
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	failed := 0
	b.ResetTimer()
	for r := range rounds {
		for i := range modes {
			m := &modes[(r+i)%len(modes)]
			lat, bad := openLoop(client, "http://"+m.p.Addr()+"/", rate, round)
			m.lat = append(m.lat, lat...)
			m.p99s = append(m.p99s, percentile(lat, 0.99))
			failed += bad
		}
	}
	b.StopTimer()
	if failed != 0 {
		b.Errorf("%d requests failed", failed)
	}
	for _, m := range modes {
		µs := func(d time.Duration) float64 { return float64(d.Microseconds()) }
		b.ReportMetric(µs(percentile(m.lat, 0.50)), "p50-"+m.name+"-µs")
		b.ReportMetric(µs(percentile(m.lat, 0.99)), "p99-"+m.name+"-µs")
		// On a shared machine another process's burst lands in one
		// round and swamps the pooled p99; the median of the rounds'
		// p99s is what the mirror itself does to the tail.
		b.ReportMetric(µs(percentile(m.p99s, 0.50)), "p99med-"+m.name+"-µs")
		if m.name != "none" {
			b.ReportMetric(gatheredB(b, m.p, metrics.MirrorDroppedTotal), "dropped-"+m.name)
		}
	}
}

// openLoop sends rate requests a second to url for d, each at its time
// whether or not the earlier ones were answered, and returns their
// latencies and how many failed.
func openLoop(c *http.Client, url string, rate int, d time.Duration) ([]time.Duration, int) {
	n := int(d.Seconds() * float64(rate))
	every := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	var bad sync.Map
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * every)))
		wg.Go(func() {
			t0 := time.Now()
			res, err := c.Get(url)
			if err == nil {
				_, err = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if err == nil && res.StatusCode != 200 {
					err = fmt.Errorf("status %d", res.StatusCode)
				}
			}
			lat[i] = time.Since(t0)
			if err != nil {
				bad.Store(i, err)
			}
		})
	}
	wg.Wait()
	failed := 0
	bad.Range(func(any, any) bool { failed++; return true })
	return lat, failed
}

// percentile returns the p-quantile of ds (sorting a copy).
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

// gatheredB sums the samples of the counter family name.
func gatheredB(b *testing.B, s *Server, name string) float64 {
	mfs, err := s.registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
