package metrics

import (
	"iter"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ServerStat is one server's live state as a scrape sees it. The server
// package reads it from upstream state (atomics) when Prometheus scrapes,
// so the request path never writes a gauge.
type ServerStat struct {
	// Upstream and Server are the config names that label the series.
	Upstream, Server string
	// Up is true while the server may take requests: healthy, not
	// ejected, circuit not open and not drained (upstream's Usable).
	Up bool
	// InFlight is the number of requests the server is serving now.
	InFlight int64
	// Ejections is how many times passive health has ejected the server.
	// It is exported as a counter, read from the state that keeps it.
	Ejections uint64
	// Drained is true while an operator keeps the server out of rotation.
	Drained bool
	// LatencyEWMA is the response-time average the balancer sees; 0
	// before the first response.
	LatencyEWMA time.Duration
	// Circuit is the circuit breaker's state, one of CircuitStates; empty
	// exports no circuit series for the server.
	Circuit string
}

// CircuitStates are the circuit breaker states proxy_upstream_server_circuit_state
// exports, one series each, so a query can select state="open" without
// knowing a numeric encoding.
var CircuitStates = []string{"closed", "open", "half_open"}

// SetServerSource sets where scrapes read per-server state from: src yields
// every configured server of every upstream. It is read at each scrape, so
// after a reload the scrape shows the new servers with no other call. A
// nil src exports no per-server series.
//
// Keep src cheap and lock-free (read atomics): it runs on every scrape.
func (m *Metrics) SetServerSource(src iter.Seq[ServerStat]) {
	if src == nil {
		m.servers.src.Store(nil)
		return
	}
	m.servers.src.Store(&src)
}

// serverCollector turns the server source into const metrics at scrape
// time. A collector rather than gauges because the state already lives in
// upstream's atomics: copying it into gauges on every request would cost
// the request path for nothing, and gauges of removed servers would linger.
type serverCollector struct {
	src atomic.Pointer[iter.Seq[ServerStat]]

	up, inFlight, ejections, drained, latency, circuit *prometheus.Desc
}

func newServerCollector() *serverCollector {
	labels := []string{"upstream", "server"}
	return &serverCollector{
		up: prometheus.NewDesc(ServerUp,
			"1 if the server may take requests (healthy, not ejected, circuit not open, not drained), 0 if not.", labels, nil),
		inFlight: prometheus.NewDesc(ServerInFlight,
			"Requests the server is serving now.", labels, nil),
		ejections: prometheus.NewDesc(ServerEjections,
			"Times passive health checking ejected the server for failing live traffic.", labels, nil),
		drained: prometheus.NewDesc(ServerDrained,
			"1 while an operator keeps the server out of rotation through the admin API.", labels, nil),
		latency: prometheus.NewDesc(ServerLatencyEWMA,
			"Moving average of the server's response time, as the least_latency strategy sees it.", labels, nil),
		circuit: prometheus.NewDesc(ServerCircuit,
			"1 for the circuit breaker's current state (closed, open, half_open), 0 for the others.",
			[]string{"upstream", "server", "state"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.inFlight
	ch <- c.ejections
	ch <- c.drained
	ch <- c.latency
	ch <- c.circuit
}

// Collect implements prometheus.Collector.
func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.src.Load()
	if p == nil {
		return
	}
	type id struct{ upstream, server string }
	// A duplicate pair would make the whole scrape fail, so a source bug
	// costs one server's series rather than all metrics.
	seen := make(map[id]bool)
	for s := range *p {
		k := id{s.Upstream, s.Server}
		if seen[k] {
			continue
		}
		seen[k] = true
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, b2f(s.Up), s.Upstream, s.Server)
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(s.InFlight), s.Upstream, s.Server)
		ch <- prometheus.MustNewConstMetric(c.ejections, prometheus.CounterValue, float64(s.Ejections), s.Upstream, s.Server)
		ch <- prometheus.MustNewConstMetric(c.drained, prometheus.GaugeValue, b2f(s.Drained), s.Upstream, s.Server)
		ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, s.LatencyEWMA.Seconds(), s.Upstream, s.Server)
		if s.Circuit != "" {
			for _, st := range CircuitStates {
				ch <- prometheus.MustNewConstMetric(c.circuit, prometheus.GaugeValue, b2f(s.Circuit == st), s.Upstream, s.Server, st)
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
