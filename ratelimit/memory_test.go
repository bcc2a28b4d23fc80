package ratelimit

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestMemoryRoutesIndependent(t *testing.T) {
	// One limiter per route: spending a key's budget on one route leaves
	// the same key untouched on another.
	api, web := mustMemory(t, 1, 2), mustMemory(t, 1, 2)
	ctx := context.Background()
	for range 2 {
		api.Allow(ctx, "1.2.3.4", t0)
	}
	if api.Allow(ctx, "1.2.3.4", t0).Allowed {
		t.Error("api: third request in the same instant allowed, burst is 2")
	}
	if d := web.Allow(ctx, "1.2.3.4", t0); !d.Allowed || d.Remaining != 1 {
		t.Errorf("web: got %+v, want allowed with 1 remaining", d)
	}
}

func TestMemoryConcurrentExact(t *testing.T) {
	// With the clock stopped, however requests interleave, each key gets
	// exactly its burst: no lost update, no double spend.
	const (
		burst      = 50
		goroutines = 8
		perG       = 100
	)
	keys := []string{"a", "b", "c", "d"}
	l := mustMemory(t, 1, burst)
	counts := make([][4]int, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				k := i % len(keys)
				if l.Allow(context.Background(), keys[k], t0).Allowed {
					counts[g][k]++
				}
			}
		})
	}
	wg.Wait()
	for k, key := range keys {
		total := 0
		for g := range goroutines {
			total += counts[g][k]
		}
		if total != burst {
			t.Errorf("key %q: %d allowed, want exactly %d", key, total, burst)
		}
	}
}

func TestMemoryForgetsRestedKeys(t *testing.T) {
	l := mustMemory(t, 10, 5)
	ctx := context.Background()
	for i := range 1000 {
		l.Allow(ctx, strconv.Itoa(i), t0)
	}
	if n := l.Len(); n != 1000 {
		t.Fatalf("Len = %d right after 1000 keys, want 1000", n)
	}
	// 100ms later every key is rested (its one request took one interval).
	later := t0.Add(100 * ms)
	if n := l.Sweep(later); n != 1000 {
		t.Errorf("Sweep dropped %d, want 1000", n)
	}
	if n := l.Len(); n != 0 {
		t.Errorf("Len = %d after Sweep, want 0", n)
	}
	// A forgotten key starts rested, exactly as if it had been kept.
	if d := l.Allow(ctx, "7", later); !d.Allowed || d.Remaining != 4 {
		t.Errorf("forgotten key: got %+v, want allowed with 4 remaining", d)
	}
}

func TestMemoryInsertSweepsAsItGoes(t *testing.T) {
	// Without any Sweep call, a stream of one-off clients does not pile up:
	// each insert clears some rested entries.
	l := mustMemory(t, 10, 1)
	ctx := context.Background()
	for i := range 100_000 {
		// Each client sends one request, 1ms after the previous one;
		// each key is rested 100ms later.
		l.Allow(ctx, strconv.Itoa(i), t0.Add(time.Duration(i)*ms))
	}
	// About 100 keys are live at any time; allow generous slack for the
	// randomness of sampling.
	if n := l.Len(); n > 1_000 {
		t.Errorf("Len = %d after 100k one-off clients, want it near the ~100 live ones", n)
	}
}

func TestMemoryCapEvictsInFavourOfClients(t *testing.T) {
	// A full shard evicts; the evicted client only gains (a fresh burst),
	// and the cap holds.
	l := mustMemory(t, 1, 3, WithMaxKeys(64)) // one shard of 64
	if len(l.shards) != 1 || l.maxPerShard != 64 {
		t.Fatalf("shards, per shard = %d, %d; want 1, 64", len(l.shards), l.maxPerShard)
	}
	ctx := context.Background()
	for i := range 1000 {
		d := l.Allow(ctx, strconv.Itoa(i), t0)
		if !d.Allowed || d.Remaining != 2 {
			t.Fatalf("new key %d: got %+v, want allowed with 2 remaining", i, d)
		}
		if n := l.Len(); n > 64 {
			t.Fatalf("Len = %d after key %d, cap is 64", n, i)
		}
	}
}

func TestMemoryBoundedUnderFlood(t *testing.T) {
	// A million distinct clients in one instant (the worst case: none is
	// rested, so every insert past the cap must evict a live key).
	const (
		maxKeys = 1 << 16
		flood   = 1_000_000
		// perKey is a generous budget for one entry: a short key string
		// (16 bytes), its slot in a Swiss-table map (16-byte string header,
		// 8-byte TAT, 1 control byte), up to 1/8 spare slots and map growth
		// headroom.
		perKey = 256
		bound  = maxKeys * perKey // 16 MiB; the flood uncapped takes ~80 MiB
	)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	l := mustMemory(t, 1, 10, WithMaxKeys(maxKeys))
	ctx := context.Background()
	buf := make([]byte, 0, 32)
	for i := range flood {
		buf = strconv.AppendInt(append(buf[:0], "client-"...), int64(i), 10)
		l.Allow(ctx, string(buf), t0)
	}

	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := l.Len(); n > maxKeys {
		t.Errorf("Len = %d, cap %d", n, maxKeys)
	}
	for i := range l.shards {
		if n := len(l.shards[i].tat); n > l.maxPerShard {
			t.Errorf("shard %d holds %d keys, cap %d", i, n, l.maxPerShard)
		}
	}
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d keys kept of %d; heap in use grew %d KiB (bound %d KiB)", l.Len(), flood, grew>>10, bound>>10)
	if grew > bound {
		t.Errorf("heap in use grew %d bytes, bound %d", grew, bound)
	}
	runtime.KeepAlive(l)
}

func TestMemoryAllowAllocs(t *testing.T) {
	l := mustMemory(t, 1000, 10)
	ctx := context.Background()
	key := "203.0.113.9"
	l.Allow(ctx, key, t0)
	now := t0
	if n := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		l.Allow(ctx, key, now)
	}); n != 0 {
		t.Errorf("Allow on an existing key allocates %v times, want 0", n)
	}
}

func TestWithMaxKeysSplit(t *testing.T) {
	tests := []struct {
		maxKeys, shards, perShard int
	}{
		{0, maxShards, DefaultMaxKeys / maxShards},
		{1 << 20, 256, 4096},
		{10_000, 128, 78},
		{1000, 8, 125},
		{64, 1, 64},
		{1, 1, 1},
	}
	for _, tt := range tests {
		l := mustMemory(t, 1, 1, WithMaxKeys(tt.maxKeys))
		if len(l.shards) != tt.shards || l.maxPerShard != tt.perShard {
			t.Errorf("WithMaxKeys(%d): %d shards of %d, want %d of %d",
				tt.maxKeys, len(l.shards), l.maxPerShard, tt.shards, tt.perShard)
		}
	}
}
