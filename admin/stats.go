package admin

import (
	"cmp"
	"net/http"
	"slices"

	dto "github.com/prometheus/client_model/go"
)

// The metric names /api/stats reads; they are the product's (docs/observability.md) and
// package metrics defines them. admin does not import metrics so that it
// works with any gatherer carrying these names.
const (
	requestsTotal   = "proxy_requests_total"
	requestDuration = "proxy_request_duration_seconds"
	rateLimited     = "proxy_rate_limited_total"
	requestBytes    = "proxy_upstream_server_request_bytes_total"
	responseBytes   = "proxy_upstream_server_response_bytes_total"
)

// stats is the /api/stats answer: cumulative counters only. The dashboard
// keeps the previous answers and computes rates and quantiles from the
// deltas, the way Prometheus's rate() and histogram_quantile() do, so the
// proxy keeps no per-window state for it.
type stats struct {
	// TimeMS is when the registry was gathered, in Unix milliseconds: the
	// denominator of rates.
	TimeMS int64 `json:"time_ms"`
	// Buckets are the latency histogram's upper bounds in seconds; +Inf is
	// implied as the last entry of every Counts.
	Buckets []float64     `json:"buckets"`
	Servers []serverStats `json:"servers"`
	Routes  []routeStats  `json:"routes"`
}

// serverStats sums a server's series over routes and codes. Server is
// empty for answers the proxy made without reaching one (503 when none is
// available).
type serverStats struct {
	Upstream string `json:"upstream"`
	Server   string `json:"server"`
	codeCounts
	// BytesIn and BytesOut are body bytes read from clients and sent to
	// them, HAProxy's bytes in and out.
	BytesIn  float64 `json:"bytes_in"`
	BytesOut float64 `json:"bytes_out"`
	// Counts are cumulative bucket counts, one per Buckets entry plus the
	// +Inf bucket (the total count).
	Counts []uint64 `json:"counts"`
	// Sum is the total latency in seconds.
	Sum float64 `json:"sum"`
}

// routeStats sums a route's series. Route is empty for requests no route
// matched (404 with no catch-all upstream).
type routeStats struct {
	Route string `json:"route"`
	codeCounts
	// RateLimited counts the route's own rate limit refusals; TooMany
	// has them too, with any 429 a server sent.
	RateLimited float64 `json:"rate_limited"`
}

// codeCounts are answers by class of status code.
type codeCounts struct {
	Requests float64 `json:"requests"`
	// ClientErrors counts 4xx answers, the proxy's own 429 included.
	ClientErrors float64 `json:"client_errors"`
	// NotFound and TooMany count 404 and 429 answers, whoever sent them.
	NotFound float64 `json:"not_found"`
	TooMany  float64 `json:"too_many_requests"`
	// Errors counts 5xx answers, the proxy's own 502/503/504 included.
	Errors float64 `json:"errors"`
}

// add counts v answers with status code.
func (c *codeCounts) add(code string, v float64) {
	c.Requests += v
	if len(code) != 3 {
		return // "other": out of range, no class
	}
	switch code[0] {
	case '4':
		c.ClientErrors += v
		switch code {
		case "404":
			c.NotFound += v
		case "429":
			c.TooMany += v
		}
	case '5':
		c.Errors += v
	}
}

func (a *api) stats(w http.ResponseWriter, r *http.Request) {
	now := a.opts.Now()
	mfs, err := a.opts.Registry.Gather()
	if err != nil && len(mfs) == 0 {
		a.opts.Logger.Error("admin: gather metrics", "error", err)
		text(w, http.StatusInternalServerError, "could not gather metrics")
		return
	}
	st := buildStats(mfs)
	st.TimeMS = now.UnixMilli()
	writeJSON(w, st)
}

type serverKey struct{ upstream, server string }

func buildStats(mfs []*dto.MetricFamily) stats {
	servers := map[serverKey]*serverStats{}
	routes := map[string]*routeStats{}
	server := func(k serverKey) *serverStats {
		s := servers[k]
		if s == nil {
			s = &serverStats{Upstream: k.upstream, Server: k.server}
			servers[k] = s
		}
		return s
	}
	route := func(name string) *routeStats {
		r := routes[name]
		if r == nil {
			r = &routeStats{Route: name}
			routes[name] = r
		}
		return r
	}
	st := stats{Buckets: []float64{}}
	for _, mf := range mfs {
		switch mf.GetName() {
		case requestsTotal:
			for _, m := range mf.GetMetric() {
				l := labels(m)
				v := m.GetCounter().GetValue()
				server(serverKey{l["upstream"], l["server"]}).add(l["code"], v)
				route(l["route"]).add(l["code"], v)
			}
		case requestBytes, responseBytes:
			for _, m := range mf.GetMetric() {
				l := labels(m)
				s := server(serverKey{l["upstream"], l["server"]})
				if mf.GetName() == requestBytes {
					s.BytesIn += m.GetCounter().GetValue()
				} else {
					s.BytesOut += m.GetCounter().GetValue()
				}
			}
		case requestDuration:
			for _, m := range mf.GetMetric() {
				l := labels(m)
				addHistogram(&st, server(serverKey{l["upstream"], l["server"]}), m.GetHistogram())
			}
		case rateLimited:
			for _, m := range mf.GetMetric() {
				route(labels(m)["route"]).RateLimited += m.GetCounter().GetValue()
			}
		}
	}
	st.Servers = make([]serverStats, 0, len(servers))
	for _, s := range servers {
		if s.Counts == nil {
			s.Counts = make([]uint64, len(st.Buckets)+1)
		}
		st.Servers = append(st.Servers, *s)
	}
	slices.SortFunc(st.Servers, func(a, b serverStats) int {
		return cmp.Or(cmp.Compare(a.Upstream, b.Upstream), cmp.Compare(a.Server, b.Server))
	})
	st.Routes = make([]routeStats, 0, len(routes))
	for _, r := range routes {
		st.Routes = append(st.Routes, *r)
	}
	slices.SortFunc(st.Routes, func(a, b routeStats) int { return cmp.Compare(a.Route, b.Route) })
	return st
}

// addHistogram adds h's cumulative buckets to s. The first histogram seen
// fixes the bucket layout; every series of one vector shares it, so a
// mismatch can only come from a foreign metric of the same name and is
// left out rather than mixed in.
func addHistogram(st *stats, s *serverStats, h *dto.Histogram) {
	bs := h.GetBucket()
	if len(st.Buckets) == 0 && len(bs) > 0 {
		for _, b := range bs {
			st.Buckets = append(st.Buckets, b.GetUpperBound())
		}
	}
	if len(bs) != len(st.Buckets) {
		return
	}
	for i, b := range bs {
		if b.GetUpperBound() != st.Buckets[i] {
			return
		}
	}
	if s.Counts == nil {
		s.Counts = make([]uint64, len(st.Buckets)+1)
	}
	for i, b := range bs {
		s.Counts[i] += b.GetCumulativeCount()
	}
	s.Counts[len(bs)] += h.GetSampleCount()
	s.Sum += h.GetSampleSum()
}

func labels(m *dto.Metric) map[string]string {
	l := make(map[string]string, len(m.GetLabel()))
	for _, lp := range m.GetLabel() {
		l[lp.GetName()] = lp.GetValue()
	}
	return l
}
