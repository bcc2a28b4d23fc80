package gctune

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// After a burst the runtime keeps what the burst freed: the stacks its
// requests grew and their garbage, up to the heap goal and 10% more, which
// at GOGC=200 is three times the live heap. With 10,000 idle keep-alive
// connections that was 9.1 KiB of RSS per connection where 4.4 are in use
// (docs/performance.md, "Memory per idle connection"). The servers tell
// the package when their requests start and stop coming (Busy, Quiet), and
// once every server has been quiet for trimAfter, the memory held beyond
// what is live goes back to the system, if there is enough of it to be
// worth a collection.
const (
	// trimAfter is how long every server must have been quiet: by then
	// the waits of idle connections have moved to small stacks (h1's
	// shrinkAfter, 1 s after a connection's last request).
	trimAfter = time.Second
	// trimEvery spaces trims, so that traffic in short bursts does not
	// collect after each one.
	trimEvery = 10 * time.Second
	// trimMin is the least memory held beyond what is live that a trim
	// is worth a forced collection for.
	trimMin = 16 << 20
)

var trim struct {
	mu    sync.Mutex
	busy  int
	timer *time.Timer
	last  time.Time
}

// Busy says a server's requests have started to come.
func Busy() {
	trim.mu.Lock()
	trim.busy++
	trim.mu.Unlock()
}

// Quiet says a server that called Busy has had no request for a while.
// Once none is busy, the memory freed meanwhile may go back to the system.
func Quiet() {
	trim.mu.Lock()
	defer trim.mu.Unlock()
	if trim.busy--; trim.busy == 0 && trim.timer == nil {
		trim.timer = time.AfterFunc(trimAfter, trimIfQuiet)
	}
}

// Settle says a server that called Busy has stopped (it is shutting down):
// it no longer counts as busy, and starts no trim.
func Settle() {
	trim.mu.Lock()
	trim.busy--
	trim.mu.Unlock()
}

func trimIfQuiet() {
	trim.mu.Lock()
	if trim.busy > 0 {
		trim.timer = nil
		trim.mu.Unlock()
		return
	}
	if wait := trimEvery - time.Since(trim.last); !trim.last.IsZero() && wait > 0 {
		trim.timer.Reset(wait)
		trim.mu.Unlock()
		return
	}
	trim.timer = nil
	trim.last = time.Now()
	trim.mu.Unlock()
	if heldBeyondLive() >= trimMin {
		debug.FreeOSMemory()
	}
}

// trimMetrics are read by heldBeyondLive: the memory mapped, what of it
// was given back, the live heap, and the goroutines' count and stack size.
var trimMetrics = []string{
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/gc/heap/live:bytes",
	"/sched/goroutines:goroutines",
	"/gc/stack/starting-size:bytes",
}

// heldBeyondLive is about how much memory the runtime holds beyond the
// live heap and a starting-size stack per goroutine.
func heldBeyondLive() uint64 {
	s := make([]metrics.Sample, len(trimMetrics))
	for i, name := range trimMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	held := v(0) - min(v(0), v(1))
	inUse := v(2) + v(3)*v(4)
	return held - min(held, inUse)
}
