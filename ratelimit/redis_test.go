package ratelimit

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/tbsphathuynh/proxy/internal/redistest"
)

// testTimeout bounds each Redis command in these tests. Outages here are
// a stopped server, which refuses at once, so no test waits it out; it
// only has to be long enough that a loaded machine (the race detector,
// other packages' tests beside these) never turns a slow answer into an
// outage. The default, DefaultRedisTimeout (100 ms), is not: beside a CPU
// hog, calls of 100-230 ms were common and put an instance on its fallback
// in most runs of TestRedisSharedAcrossInstances.
const testTimeout = 10 * time.Second

func newClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(ClientOptions(addr, "", 0, testTimeout))
	t.Cleanup(func() { c.Close() })
	return c
}

// mustRedis is NewRedis with testTimeout unless opts names a timeout.
func mustRedis(t testing.TB, c redis.UniversalClient, rate float64, burst int, opts RedisOptions) *Redis {
	t.Helper()
	opts.Timeout = cmpOr(opts.Timeout, testTimeout)
	l, err := NewRedis(c, rate, burst, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRedisBurstThenSteady(t *testing.T) {
	// The same contract as the memory store, decided by the script. The
	// caller's clock stands in for Redis TIME so the steps are exact.
	addr, _ := redistest.Start(t)
	l := mustRedis(t, newClient(t, addr), 10, 5, RedisOptions{Scope: "api"})
	l.callerClock = true
	runScenario(t, l, burstThenSteady)
	if !l.Healthy() || l.StateChanges() != 0 {
		t.Errorf("Healthy, StateChanges = %v, %d; want true, 0", l.Healthy(), l.StateChanges())
	}
}

func TestRedisServerClock(t *testing.T) {
	// With Redis TIME deciding, now is ignored: the burst is spent at once
	// whatever the caller claims (an hour apart would have rested the key
	// each time), and the wait is counted in real time. The interval,
	// 100s, is far longer than any stall of a loaded machine, so the
	// bounds below hold whatever the elapsed time e.
	const interval = 100 * time.Second
	addr, _ := redistest.Start(t)
	l := mustRedis(t, newClient(t, addr), 1/interval.Seconds(), 3, RedisOptions{})
	ctx := context.Background()
	start := time.Now()
	for i := range 3 {
		if d := l.Allow(ctx, "k", t0.Add(time.Duration(i)*time.Hour)); !d.Allowed || d.Remaining != 2-i {
			t.Fatalf("request %d: got %+v, want allowed with %d remaining", i, d, 2-i)
		}
	}
	d := l.Allow(ctx, "k", t0.Add(24*time.Hour))
	e := time.Since(start)
	// The first request set the clock running: one interval for the 4th
	// to wait, three for the key to rest, less what has passed since.
	if d.Allowed || d.RetryAfter < interval-e || d.RetryAfter > interval || d.Reset < 3*interval-e || d.Reset > 3*interval {
		t.Errorf("4th request %v after the 1st: got %+v, want denied, RetryAfter in [%v-e, %v], Reset in [%v-e, %v]", e, d, interval, interval, 3*interval, 3*interval)
	}
}

func TestRedisKeysScoped(t *testing.T) {
	addr, _ := redistest.Start(t)
	c := newClient(t, addr)
	api := mustRedis(t, c, 1, 1, RedisOptions{Scope: "api"})
	web := mustRedis(t, c, 1, 1, RedisOptions{Scope: "web"})
	odd := mustRedis(t, c, 1, 1, RedisOptions{Scope: "api:x", KeyPrefix: "p:"})
	ctx := context.Background()
	for _, l := range []*Redis{api, web, odd} {
		if !l.Allow(ctx, "1.2.3.4", t0).Allowed {
			t.Errorf("scope %q: first request denied", l.scope)
		}
	}
	if api.Allow(ctx, "1.2.3.4", t0).Allowed {
		t.Error("api: second request allowed, burst is 1")
	}
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"proxy:rl:api:1.2.3.4": true, "proxy:rl:web:1.2.3.4": true, "p:api%3Ax:1.2.3.4": true}
	for _, k := range keys {
		if !want[k] {
			t.Errorf("unexpected key %q", k)
		}
		if ttl := c.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Second {
			t.Errorf("key %q: PTTL %v, want (0, 1s]: it expires once rested", k, ttl)
		}
	}
	if len(keys) != len(want) {
		t.Errorf("keys = %q, want %d", keys, len(want))
	}
}

func TestRedisSharedAcrossInstances(t *testing.T) {
	// Two proxy instances, each with its own client, share one limit: the
	// total they allow is one burst plus the rate over the elapsed time,
	// not twice that. Four clients ask until each has been refused, so
	// both instances reach the limit; then the bounds hold by
	// construction, whatever the machine's stalls:
	//   - a refusal means the whole burst was spent since the key was
	//     last rested, so at least burst were allowed;
	//   - at most burst plus rate per second of Redis' clock between the
	//     first and the last decision, which lie within [start, end].
	// Two separate limits would allow at least 2*burst, over that bound
	// while the test takes less than burst/rate (10 s).
	const (
		rate  = 2
		burst = 20
	)
	addr, _ := redistest.Start(t)
	instances := []*Redis{
		mustRedis(t, newClient(t, addr), rate, burst, RedisOptions{Scope: "api"}),
		mustRedis(t, newClient(t, addr), rate, burst, RedisOptions{Scope: "api"}),
	}
	var allowed, refused atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 4 {
		l := instances[i%2]
		wg.Go(func() {
			for n := 0; n < 5000; n++ {
				if !l.Allow(context.Background(), "client", time.Now()).Allowed {
					refused.Add(1)
					return
				}
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	most := burst + int64(rate*elapsed.Seconds()) + 1 // +1: Redis' clock is in whole microseconds
	got := allowed.Load()
	t.Logf("allowed %d, refused %d in %v across 2 instances", got, refused.Load(), elapsed)
	if refused.Load() != 4 || got < burst || got > most {
		t.Errorf("allowed %d and refused %d in %v; one shared limit allows %d to %d, and refuses each of 4 clients once", got, refused.Load(), elapsed, burst, most)
	}
	for _, l := range instances {
		if !l.Healthy() {
			t.Error("an instance fell back during the test")
		}
	}
}

// transitions records OnStateChange calls and logged switches.
type transitions struct {
	mu    sync.Mutex // guards calls
	calls []bool
	log   lockedWriter
}

func (tr *transitions) options(policy OnStoreError) RedisOptions {
	return RedisOptions{
		Scope:         "api",
		Timeout:       testTimeout,
		OnStoreError:  policy,
		Logger:        slog.New(slog.NewTextHandler(&tr.log, nil)),
		OnStateChange: func(h bool) { tr.mu.Lock(); tr.calls = append(tr.calls, h); tr.mu.Unlock() },
	}
}

func (tr *transitions) check(t *testing.T, want ...bool) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if diff := cmp.Diff(want, tr.calls); diff != "" {
		t.Errorf("OnStateChange calls (-want +got):\n%s", diff)
	}
	if lines := strings.Count(tr.log.String(), "\n"); lines != len(want) {
		t.Errorf("logged %d lines, want one per switch (%d):\n%s", lines, len(want), tr.log.String())
	}
}

type lockedWriter struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestRedisOutageAllowFallsBackAndRecovers(t *testing.T) {
	srv := redistest.NewServer(t)
	client := newClient(t, srv.Addr)
	var sent atomic.Int64
	client.AddHook(countingHook{&sent})
	var tr transitions
	l := mustRedis(t, client, 10, 5, tr.options(StoreErrorAllow))
	ctx := context.Background()
	now := t0

	if d := l.Allow(ctx, "k", now); !d.Allowed {
		t.Fatalf("before the outage: %+v", d)
	}
	srv.Stop()

	// Every request is still decided, by the local limiter, and none waits
	// much longer than the timeout (5x is a sanity bound for a loaded
	// machine, not a performance assertion).
	var slowest time.Duration
	got := 0
	for range 20 {
		start := time.Now()
		if l.Allow(ctx, "k", now).Allowed {
			got++
		}
		slowest = max(slowest, time.Since(start))
	}
	if got != 5 {
		t.Errorf("during the outage %d of 20 allowed in one instant, want the local burst of 5", got)
	}
	if slowest > 5*testTimeout {
		t.Errorf("slowest decision took %v, want under %v", slowest, 5*testTimeout)
	}
	if l.Healthy() || l.StateChanges() != 1 {
		t.Errorf("Healthy, StateChanges = %v, %d; want false, 1", l.Healthy(), l.StateChanges())
	}

	// Within the backoff nobody asks Redis; after it, exactly one request
	// probes while the others keep using the fallback.
	before := sent.Load()
	for range 50 {
		l.Allow(ctx, "k", now.Add(DefaultRedisBackoff/2))
	}
	if n := sent.Load() - before; n != 0 {
		t.Errorf("%d commands sent to Redis within the backoff, want 0", n)
	}
	now = now.Add(DefaultRedisBackoff)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { l.Allow(ctx, "k", now) })
	}
	wg.Wait()
	if n := sent.Load() - before; n != 1 {
		t.Errorf("%d commands sent by 10 requests after the backoff, want 1 probe", n)
	}

	srv.Start()
	// Poll until a probe gets through, moving the caller's clock past the
	// backoff each time.
	for deadline := time.Now().Add(10 * time.Second); !l.Healthy(); {
		if time.Now().After(deadline) {
			t.Fatal("still on the fallback 10s after Redis came back")
		}
		now = now.Add(DefaultRedisBackoff)
		l.Allow(ctx, "probe", now)
		time.Sleep(10 * time.Millisecond)
	}
	if n := l.StateChanges(); n != 2 {
		t.Errorf("StateChanges = %d, want 2", n)
	}
	tr.check(t, false, true)

	// Shared limiting is back: another instance sees what this one spent.
	other := mustRedis(t, newClient(t, srv.Addr), 10, 5, RedisOptions{Scope: "api"})
	for range 5 {
		l.Allow(ctx, "shared", now)
	}
	if d := other.Allow(ctx, "shared", now); d.Allowed {
		t.Errorf("other instance allowed a key this one exhausted: %+v", d)
	}
}

func TestRedisOutageDeny(t *testing.T) {
	srv := redistest.NewServer(t)
	var tr transitions
	l := mustRedis(t, newClient(t, srv.Addr), 10, 5, tr.options(StoreErrorDeny))
	ctx := context.Background()
	if !l.Allow(ctx, "k", t0).Allowed {
		t.Fatal("denied before the outage")
	}
	srv.Stop()
	want := Decision{Limit: 5, Reset: time.Second, RetryAfter: time.Second}
	for i := range 10 {
		if diff := cmp.Diff(want, l.Allow(ctx, "fresh", t0)); diff != "" {
			t.Fatalf("request %d during the outage (-want +got):\n%s", i, diff)
		}
	}
	tr.check(t, false)
	if log := tr.log.String(); !strings.Contains(log, "refusing requests with 429") || strings.Contains(log, "deciding locally") {
		t.Errorf("the deny policy's warning must say it refuses, not that it decides locally:\n%s", log)
	}
}

// The Redis client library's own lines go to the proxy's logger at DEBUG,
// as structured records, rather than a bare line on stderr every second
// of an outage.
func TestRedisLoggerIsStructuredAndQuiet(t *testing.T) {
	var buf lockedWriter
	l := RedisLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v\n", 1, "refused")
	var rec map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &rec); err != nil {
		t.Fatalf("not one JSON record: %v: %s", err, buf.String())
	}
	if rec["level"] != "DEBUG" || rec["msg"] != "redis: connection pool: failed to dial after 1 attempts: refused" {
		t.Errorf("record %v", rec)
	}
	buf = lockedWriter{}
	RedisLogger(slog.New(slog.NewJSONHandler(&buf, nil))).Printf(context.Background(), "noise")
	if buf.String() != "" {
		t.Errorf("at the default level the library's lines must not show: %q", buf.String())
	}
}

func TestRedisCallerGone(t *testing.T) {
	// A request whose context is already done says nothing about Redis.
	addr, _ := redistest.Start(t)
	l := mustRedis(t, newClient(t, addr), 10, 5, RedisOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.Allow(ctx, "k", t0)
	if !l.Healthy() || l.StateChanges() != 0 {
		t.Errorf("Healthy, StateChanges = %v, %d after a cancelled request; want true, 0", l.Healthy(), l.StateChanges())
	}
}

func TestNewRedisErrors(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { c.Close() })
	if _, err := NewRedis(nil, 1, 1, RedisOptions{}); err != ErrNoClient {
		t.Errorf("nil client: err = %v, want ErrNoClient", err)
	}
	if _, err := NewRedis(c, 0, 1, RedisOptions{}); err == nil {
		t.Error("rate 0: no error")
	}
	if _, err := NewRedis(c, 1, 1, RedisOptions{OnStoreError: "maybe"}); err == nil {
		t.Error(`on_store_error "maybe": no error`)
	}
}

// countingHook counts the commands a client sends.
type countingHook struct{ n *atomic.Int64 }

func (countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
