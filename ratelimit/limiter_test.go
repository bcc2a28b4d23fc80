package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// go-redis logs every failed dial to stderr, unattributed to a test:
	// the outage tests' deliberate ones read like a failure of whichever
	// test failed beside them. The proxy routes them to DEBUG; so do we.
	redis.SetLogger(RedisLogger(slog.New(slog.DiscardHandler)))
	goleak.VerifyTestMain(m)
}

// t0 is a whole second, so it is exact at every store's resolution.
var t0 = time.Unix(1_700_000_000, 0)

const ms = time.Millisecond

// step is one request in a scenario: at t0+at, want d.
type step struct {
	at   time.Duration
	key  string
	want Decision
}

func allowed(remaining int, reset time.Duration) Decision {
	return Decision{Allowed: true, Limit: 5, Remaining: remaining, Reset: reset}
}

func denied(reset, retry time.Duration) Decision {
	return Decision{Limit: 5, Reset: reset, RetryAfter: retry}
}

// burstThenSteady is the contract at rate 10/s, burst 5, for every store.
var burstThenSteady = []step{
	// A fresh key makes its whole burst at once.
	{0, "a", allowed(4, 100*ms)},
	{0, "a", allowed(3, 200*ms)},
	{0, "a", allowed(2, 300*ms)},
	{0, "a", allowed(1, 400*ms)},
	{0, "a", allowed(0, 500*ms)},
	// Then it waits one interval, 1/rate.
	{0, "a", denied(500*ms, 100*ms)},
	{50 * ms, "a", denied(450*ms, 50*ms)},
	{100 * ms, "a", allowed(0, 500*ms)},
	{100 * ms, "a", denied(500*ms, 100*ms)},
	{199 * ms, "a", denied(401*ms, 1*ms)},
	{200 * ms, "a", allowed(0, 500*ms)},
	// Another key has its own budget.
	{200 * ms, "b", allowed(4, 100*ms)},
	// 250ms later two and a half intervals have come back: this request
	// takes one and one more whole one is left.
	{450 * ms, "a", allowed(1, 350*ms)},
	// Fully rested: a full burst again, never more.
	{10 * time.Second, "a", allowed(4, 100*ms)},
	{10 * time.Second, "b", allowed(4, 100*ms)},
}

func runScenario(t *testing.T, l Limiter, steps []step) {
	t.Helper()
	for i, s := range steps {
		got := l.Allow(context.Background(), s.key, t0.Add(s.at))
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Errorf("step %d (%q at +%v): decision mismatch (-want +got):\n%s", i, s.key, s.at, diff)
		}
	}
}

func TestMemoryBurstThenSteady(t *testing.T) {
	runScenario(t, mustMemory(t, 10, 5), burstThenSteady)
}

func TestSteadyRateOverTime(t *testing.T) {
	// Asking every 10ms for 10s at 10/s with burst 5 gets the burst plus one
	// per interval: 5 + 10*10 = 105, give or take the request on the edge.
	l := mustMemory(t, 10, 5)
	n := 0
	for at := time.Duration(0); at < 10*time.Second; at += 10 * ms {
		if l.Allow(context.Background(), "k", t0.Add(at)).Allowed {
			n++
		}
	}
	if n < 104 || n > 106 {
		t.Errorf("allowed %d requests in 10s, want 105±1", n)
	}
}

func TestNewGCRA(t *testing.T) {
	tests := []struct {
		name     string
		rate     float64
		burst    int
		unit     time.Duration
		interval int64
		wantErr  bool
	}{
		{name: "ten per second", rate: 10, burst: 5, unit: time.Nanosecond, interval: int64(100 * ms)},
		{name: "fractional", rate: 0.5, burst: 1, unit: time.Nanosecond, interval: int64(2 * time.Second)},
		{name: "rounded to unit", rate: 3, burst: 1, unit: time.Microsecond, interval: 333333000},
		{name: "zero rate", rate: 0, burst: 1, unit: time.Nanosecond, wantErr: true},
		{name: "negative rate", rate: -1, burst: 1, unit: time.Nanosecond, wantErr: true},
		{name: "NaN", rate: math.NaN(), burst: 1, unit: time.Nanosecond, wantErr: true},
		{name: "infinite", rate: math.Inf(1), burst: 1, unit: time.Nanosecond, wantErr: true},
		{name: "zero burst", rate: 1, burst: 0, unit: time.Nanosecond, wantErr: true},
		{name: "finer than unit", rate: 3e6, burst: 1, unit: time.Microsecond, wantErr: true},
		{name: "spans centuries", rate: 1e-9, burst: 10, unit: time.Nanosecond, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := newGCRA(tt.rate, tt.burst, tt.unit)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidLimit) {
					t.Fatalf("err = %v, want ErrInvalidLimit", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g.interval != tt.interval || g.limit != tt.interval*int64(tt.burst) {
				t.Errorf("interval, limit = %d, %d; want %d, %d", g.interval, g.limit, tt.interval, tt.interval*int64(tt.burst))
			}
		})
	}
}

func TestSetHeaders(t *testing.T) {
	tests := []struct {
		name string
		d    Decision
		want http.Header
	}{
		{
			name: "allowed",
			d:    Decision{Allowed: true, Limit: 200, Remaining: 150, Reset: 2500 * ms},
			want: http.Header{"Ratelimit-Limit": {"200"}, "Ratelimit-Remaining": {"150"}, "Ratelimit-Reset": {"3"}},
		},
		{
			name: "rested key",
			d:    Decision{Allowed: true, Limit: 5, Remaining: 5},
			want: http.Header{"Ratelimit-Limit": {"5"}, "Ratelimit-Remaining": {"5"}, "Ratelimit-Reset": {"0"}},
		},
		{
			name: "denied rounds up",
			d:    Decision{Limit: 5, Reset: 500 * ms, RetryAfter: 100 * ms},
			want: http.Header{"Ratelimit-Limit": {"5"}, "Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {"1"}, "Retry-After": {"1"}},
		},
		{
			name: "denied whole seconds stay",
			d:    Decision{Limit: 5, Reset: 2 * time.Second, RetryAfter: 2 * time.Second},
			want: http.Header{"Ratelimit-Limit": {"5"}, "Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {"2"}, "Retry-After": {"2"}},
		},
		{
			name: "zero decision still says retry in 1s",
			d:    Decision{},
			want: http.Header{"Ratelimit-Limit": {"0"}, "Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {"0"}, "Retry-After": {"1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			tt.d.SetHeaders(h)
			if diff := cmp.Diff(tt.want, h); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
			// Readers use the spelling from the spec.
			if h.Get("RateLimit-Limit") == "" {
				t.Error(`h.Get("RateLimit-Limit") is empty`)
			}
		})
	}
}

func TestSetHeadersAllocs(t *testing.T) {
	h := http.Header{}
	d := Decision{Limit: 50, Remaining: 0, Reset: 3 * time.Second, RetryAfter: time.Second}
	d.SetHeaders(h) // grow the map once
	// One value array; all numbers are below 100.
	if n := testing.AllocsPerRun(100, func() { d.SetHeaders(h) }); n != 1 {
		t.Errorf("SetHeaders allocs = %v, want 1", n)
	}
}

func mustMemory(t testing.TB, rate float64, burst int, opts ...MemoryOption) *Memory {
	t.Helper()
	m, err := NewMemory(rate, burst, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
