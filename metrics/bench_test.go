package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkObserve is the per-request cost of metrics: one counter and one
// histogram update through the resolved-children cache.
func BenchmarkObserve(b *testing.B) {
	m := New(prometheus.NewRegistry())
	m.Observe("api", "api", "a", 200, time.Millisecond)
	b.ReportAllocs()
	for b.Loop() {
		m.Observe("api", "api", "a", 200, time.Millisecond)
	}
}

// BenchmarkObserveParallel spreads requests over a realistic mix of
// servers and codes from every P, as a busy proxy would.
func BenchmarkObserveParallel(b *testing.B) {
	m := New(prometheus.NewRegistry())
	servers := []string{"a", "b", "c", "d"}
	codes := []int{200, 200, 200, 304, 404, 502}
	for _, s := range servers {
		for _, c := range codes {
			m.Observe("api", "api", s, c, time.Millisecond)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Observe("api", "api", servers[i%len(servers)], codes[i%len(codes)], time.Duration(i%50)*time.Millisecond)
			i++
		}
	})
}

// BenchmarkObserveUncached is what Observe would cost without the cache:
// WithLabelValues hashes the labels and builds a slice on every call.
func BenchmarkObserveUncached(b *testing.B) {
	m := New(prometheus.NewRegistry())
	b.ReportAllocs()
	for b.Loop() {
		m.requests.WithLabelValues("api", "api", "a", "200").Inc()
		m.duration.WithLabelValues("api", "api", "a").Observe(0.001)
	}
}

// BenchmarkRequestPath is everything a request records in the common case
// plus a retry and a rate-limit hit, the rarer paths.
func BenchmarkRequestPath(b *testing.B) {
	m := New(prometheus.NewRegistry())
	m.Observe("api", "api", "a", 200, time.Millisecond)
	m.Retry("api", 1)
	m.RateLimited("api")
	b.ReportAllocs()
	for b.Loop() {
		m.Observe("api", "api", "a", 200, time.Millisecond)
		m.Retry("api", 1)
		m.RateLimited("api")
	}
}
