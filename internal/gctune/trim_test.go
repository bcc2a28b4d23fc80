package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// sink keeps the garbage below from being optimised away, spun the work.
var (
	sink [][]byte
	spun uint64
)

// fresh forgets the last trim, which an earlier test may have made.
func fresh() {
	trim.mu.Lock()
	trim.last = time.Time{}
	trim.mu.Unlock()
}

// burst leaves 64 MiB of freed memory that the runtime's own scavenger
// keeps: the heap goal is set far above it, as the proxy's at GOGC=200 is
// with a large live heap.
func burst(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { debug.SetGCPercent(debug.SetGCPercent(1000)) })
	debug.SetGCPercent(1000)
	for range 64 {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil
	runtime.GC()
	if n := returnable(); n < trimMin {
		t.Fatalf("only %d MiB to give back after the burst, want at least %d", n>>20, trimMin>>20)
	}
}

// waitTrimmed polls until the freed memory has gone back.
func waitTrimmed(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for returnable() >= trimMin {
		if time.Now().After(deadline) {
			t.Fatalf("%d MiB still held 20 s after every server went quiet", returnable()>>20)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Once every server is quiet, what a burst freed goes back to the system;
// while one is still busy, nothing is collected for it.
func TestQuietServersGiveFreedMemoryBack(t *testing.T) {
	if !cpuKnown {
		t.Skip("no trim where the process's CPU time is unknown")
	}
	fresh()
	Busy()
	Busy()
	burst(t)
	Quiet()
	trim.mu.Lock()
	armed := trim.timer != nil
	trim.mu.Unlock()
	if armed {
		t.Fatal("a trim was planned while a server is still busy")
	}
	Quiet()
	waitTrimmed(t)
}

// A process busy elsewhere (listeners that do not report, net/http's
// connections) is not trimmed under its load: its CPU says it is busy.
func TestBusyProcessIsNotTrimmed(t *testing.T) {
	if !cpuKnown {
		t.Skip("no trim where the process's CPU time is unknown")
	}
	fresh()
	Busy()
	burst(t)
	Quiet()
	// Three of the trim's looks while the process burns a CPU.
	end := time.Now().Add(3*trimAfter + trimAfter/2)
	for time.Now().Before(end) {
		for range 1 << 16 {
			spun = spun*31 + 7
		}
	}
	if n := returnable(); n < trimMin {
		t.Fatalf("trimmed under load: %d MiB left to give back", n>>20)
	}
	waitTrimmed(t)
}
