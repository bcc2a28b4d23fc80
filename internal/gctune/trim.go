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
// (docs/performance.md, "Memory per idle connection"). The fast path's
// servers tell the package when their requests start and stop coming
// (Busy, Quiet). Once none has had a request for trimAfter, and the
// process has used next to no CPU meanwhile (other listeners, net/http's
// connections, may still be busy), the memory the collector could give
// back goes back to the system, if there is enough of it to be worth a
// collection.
const (
	// trimAfter is how long every server must have been quiet: by then
	// the waits of idle connections have moved to small stacks (h1's
	// shrinkAfter, 1 s after a connection's last request).
	trimAfter = time.Second
	// trimEvery spaces trims, so that traffic in short bursts does not
	// collect after each one.
	trimEvery = 10 * time.Second
	// trimMin is the least memory a trim must be able to give back to be
	// worth a forced collection.
	trimMin = 16 << 20
	// idleCPU is the most CPU the process may have used per second of
	// trimAfter for it to count as idle: well above what idle
	// connections and the admin listener cost, well below any load.
	idleCPU = 20 * time.Millisecond
)

var trim struct {
	mu       sync.Mutex
	busy     int
	timer    *time.Timer
	quietAt  time.Time     // when busy last fell to 0
	quietCPU time.Duration // processCPU() then
	last     time.Time     // the last trim
}

// Busy says a server's requests have started to come.
func Busy() {
	trim.mu.Lock()
	trim.busy++
	trim.mu.Unlock()
}

// Quiet says a server that called Busy has had no request for a while, or
// has stopped. Once none is busy, the memory freed meanwhile may go back
// to the system.
func Quiet() {
	trim.mu.Lock()
	defer trim.mu.Unlock()
	if trim.busy--; trim.busy > 0 || !cpuKnown {
		return
	}
	trim.quietAt, trim.quietCPU = time.Now(), processCPU()
	if trim.timer == nil {
		trim.timer = time.AfterFunc(trimAfter, trimIfQuiet)
	}
}

func trimIfQuiet() {
	trim.mu.Lock()
	if trim.busy > 0 {
		// Quiet arms the timer again when the servers are.
		trim.timer = nil
		trim.mu.Unlock()
		return
	}
	now := time.Now()
	wait := trimAfter - now.Sub(trim.quietAt)
	if !trim.last.IsZero() {
		wait = max(wait, trimEvery-now.Sub(trim.last))
	}
	if wait <= 0 {
		// Busy elsewhere (a TLS listener, net/http's connections): look
		// again later, from now.
		used := processCPU() - trim.quietCPU
		if used > time.Duration(now.Sub(trim.quietAt).Seconds()*float64(idleCPU)) {
			trim.quietAt, trim.quietCPU = now, processCPU()
			wait = trimAfter
		}
	}
	if wait > 0 {
		trim.timer.Reset(wait)
		trim.mu.Unlock()
		return
	}
	trim.timer = nil
	trim.last = now
	trim.mu.Unlock()
	if gcOn() && returnable() >= trimMin {
		debug.FreeOSMemory()
	}
}

// trimMetrics are read by returnable and gcOn.
var trimMetrics = []string{
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/objects:bytes",
	"/gc/heap/live:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/sched/goroutines:goroutines",
	"/gc/stack/starting-size:bytes",
	"/gc/gogc:percent",
}

func readTrimMetrics() []uint64 {
	s := make([]metrics.Sample, len(trimMetrics))
	for i, name := range trimMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	v := make([]uint64, len(s))
	for i := range s {
		if s[i].Value.Kind() == metrics.KindUint64 {
			v[i] = s[i].Value.Uint64()
		}
	}
	return v
}

// returnable is about how much memory a collection and a scavenge would
// give back: the heap's free pages, its garbage, and stack space beyond a
// starting-size stack per goroutine. Not the runtime's own metadata, which
// a large live heap has plenty of and no trim returns.
func returnable() uint64 {
	v := readTrimMetrics()
	free, objects, live, stacks, goroutines, starting := v[0], v[1], v[2], v[3], v[4], v[5]
	garbage := objects - min(objects, live)
	spare := stacks - min(stacks, goroutines*starting)
	return free + garbage + spare
}

// gcOn reports whether the collector runs: with GOGC=off the operator has
// said not to collect, and a trim would.
func gcOn() bool { return readTrimMetrics()[6] <= 1<<62 }
