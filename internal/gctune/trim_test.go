package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// sink keeps the garbage below from being optimised away.
var sink [][]byte

// Once every server is quiet, what a burst freed goes back to the system;
// while one is still busy, nothing is collected for it.
func TestQuietServersGiveFreedMemoryBack(t *testing.T) {
	// A heap goal far above the burst, so that the runtime's own
	// scavenger keeps what it freed, as the proxy's at GOGC=200 with a
	// large live heap does.
	defer debug.SetGCPercent(debug.SetGCPercent(1000))
	Busy()
	Busy()
	// A burst's garbage: 64 MiB allocated and dropped.
	for range 64 {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil
	runtime.GC()
	if held := heldBeyondLive(); held < trimMin {
		t.Fatalf("only %d MiB held beyond the live heap after the burst, want at least %d", held>>20, trimMin>>20)
	}

	Quiet()
	trim.mu.Lock()
	armed := trim.timer != nil
	trim.mu.Unlock()
	if armed {
		t.Fatal("a trim was planned while a server is still busy")
	}

	Quiet()
	deadline := time.Now().Add(10 * time.Second)
	for heldBeyondLive() >= trimMin {
		if time.Now().After(deadline) {
			t.Fatalf("%d MiB still held beyond the live heap 10 s after every server went quiet", heldBeyondLive()>>20)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
