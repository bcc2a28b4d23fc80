package ratelimit

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/internal/redistest"
)

// benchKeys are pre-generated client keys, all inserted before timing, so
// the benchmarks measure decisions for existing keys.
func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "198.51." + strconv.Itoa(i/256%256) + "." + strconv.Itoa(i%256)
	}
	return keys
}

func benchMemory(b *testing.B) (*Memory, []string) {
	l := mustMemory(b, 1000, 100)
	keys := benchKeys(4096)
	for _, k := range keys {
		l.Allow(context.Background(), k, t0)
	}
	return l, keys
}

func BenchmarkMemoryAllow(b *testing.B) {
	l, keys := benchMemory(b)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// The clock advances 1µs a call: a mix of allowed and denied.
		l.Allow(ctx, keys[i&(len(keys)-1)], t0.Add(time.Duration(i)*time.Microsecond))
		i++
	}
}

func BenchmarkMemoryAllowParallel(b *testing.B) {
	l, keys := benchMemory(b)
	ctx := context.Background()
	var seq atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seq.Add(1)) * 7919 // each goroutine starts elsewhere in the key set
		for pb.Next() {
			l.Allow(ctx, keys[i&(len(keys)-1)], t0.Add(time.Duration(i)*time.Microsecond))
			i++
		}
	})
}

func BenchmarkClientIP(b *testing.B) {
	r := request("10.0.0.1:1", "1.1.1.1, 198.51.100.1, 10.0.0.5")
	b.ReportAllocs()
	for b.Loop() {
		ClientIP(r, fuzzTrusted)
	}
}

func BenchmarkSetHeaders(b *testing.B) {
	h := http.Header{}
	d := Decision{Limit: 200, Remaining: 150, Reset: 2 * time.Second}
	b.ReportAllocs()
	for b.Loop() {
		d.SetHeaders(h)
	}
}

// BenchmarkRedisAllow measures one decision against a local redis-server,
// round trip included, and reports its latency percentiles.
func BenchmarkRedisAllow(b *testing.B) {
	addr, _ := redistest.Start(b)
	l := mustRedis(b, newClient(b, addr), 1000, 100, RedisOptions{Scope: "bench"})
	keys := benchKeys(4096)
	ctx := context.Background()
	for _, k := range keys[:64] { // warm the pool and the script cache
		l.Allow(ctx, k, t0)
	}
	lat := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		start := time.Now()
		l.Allow(ctx, keys[i&(len(keys)-1)], t0)
		lat = append(lat, time.Since(start))
		i++
	}
	b.StopTimer()
	if !l.Healthy() {
		b.Fatal("Redis limiter fell back during the benchmark")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
