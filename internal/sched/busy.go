package sched

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// The scheduler is busy when, at the last sample, more of our goroutines
// were ready to run than busyPerP for each P, and our threads had the
// CPU most of the time since the sample before (onCPU). Then each P's
// queue holds work of our own for a while, and a goroutine that parks
// waits until one empties, or for sysmon's 10 ms: spinning pays.
//
// Neither part is how long a yield took, which the busy signal used to
// be: a yield is also long when the kernel runs another process instead
// of ours, and that said busy, and made the reads spin, whenever the host
// had other work (issue 17: p99 10-20 times nginx's beside a CPU-heavy
// neighbour, and twice its CPU per request at 200 requests/s). The count
// alone is not enough either: goroutines queue too while our threads
// wait for a CPU that other processes have, and then a spin takes CPU
// the proxy is short of, for a wake-up that the queue's wait delays
// anyway (at 10,000 requests/s on a loaded host, the proxy fell behind
// the rate where nginx kept up; docs/performance.md, "On a shared host").
//
// busyPerP is above what a proxy well below saturation queues (a
// goroutine or two per P, now and then a few more when a burst comes
// in) and below what a saturated one does (most of its connections'
// goroutines).
const busyPerP = 4

// onCPU is the least share of the wall time, for each P, that our
// threads must have run for the queue to be our own work's.
const onCPU = 0.75

// sampleEvery is how often the count is read: 0.3 µs each time, and
// taken under the scheduler's lock, so not on every yield. A busy
// scheduler stays so for many samples.
const sampleEvery = time.Millisecond

// cpuWindow is the longest window the CPU share is measured over: a
// reading older than that (the queue was short meanwhile) only starts a
// new window.
const cpuWindow = 5 * sampleEvery

var (
	// busy is the last sample's verdict.
	busy atomic.Bool
	// sampledAt is when it was taken, on the clock of since.
	sampledAt atomic.Int64
	// forced has Busy say true, for AlwaysBusy.
	forced atomic.Bool

	// sampling guards samples and the CPU reading, and makes one yield
	// at a time take the sample while the others use the last.
	sampling sync.Mutex
	samples  = []metrics.Sample{
		{Name: "/sched/goroutines/runnable:goroutines"},
		{Name: "/sched/gomaxprocs:threads"},
	}
	// cpuAt and cpuUsed are the last CPU reading: when, on the clock of
	// since, and the process's CPU time then.
	cpuAt, cpuUsed time.Duration
	// processCPU is the CPU time the process has used, user and system;
	// ok is false where it cannot be read. Tests replace it.
	processCPU = cpuTime
)

func init() {
	sampledAt.Store(int64(-sampleEvery))
	cpuAt = -cpuWindow
}

// epoch starts the monotonic clock yields are timed on.
var epoch = time.Now()

func since() time.Duration { return time.Since(epoch) }

// AlwaysBusy has the scheduler say it is busy until restore is called:
// for tests of the reads that spin, which an idle test machine would
// otherwise never take. Meanwhile the quick wait stays at QuickWait, so
// that a test's pauses count as slow however long a yield of a loaded
// test machine takes.
func AlwaysBusy() (restore func()) {
	forced.Store(true)
	frozen.Store(true)
	oldPass := pass.Swap(0)
	return func() {
		pass.Store(oldPass)
		frozen.Store(false)
		forced.Store(false)
	}
}

// Busy reports whether the scheduler is busy, as of a sample at most
// sampleEvery old, which it takes if the last is older.
func Busy() bool { return busyAt(since()) }

func busyAt(now time.Duration) bool {
	if forced.Load() {
		return true
	}
	if now-time.Duration(sampledAt.Load()) >= sampleEvery && sampling.TryLock() {
		if now-time.Duration(sampledAt.Load()) >= sampleEvery {
			busy.Store(sample(now))
			sampledAt.Store(int64(now))
		}
		sampling.Unlock()
	}
	return busy.Load()
}

// sample reads the runtime's count and, when it is high, the process's
// CPU time, and says whether the scheduler is busy. sampling is held.
func sample(now time.Duration) bool {
	metrics.Read(samples)
	runnable, procs := samples[0].Value, samples[1].Value
	if runnable.Kind() != metrics.KindUint64 || procs.Kind() != metrics.KindUint64 {
		// A runtime without these metrics: park as the poller has it.
		return false
	}
	p := max(procs.Uint64(), 1)
	if runnable.Uint64() < busyPerP*p {
		return false
	}
	used, ok := processCPU()
	if !ok {
		return false
	}
	last, lastUsed := cpuAt, cpuUsed
	cpuAt, cpuUsed = now, used
	window := now - last
	if window <= 0 || window > cpuWindow {
		// The first reading of a window: busy from the next on.
		return false
	}
	return float64(used-lastUsed) >= onCPU*float64(p)*float64(window)
}

// yieldHook, when a test sets it, runs at each Yield.
var yieldHook func()

// Yield lets the goroutines ready to run go first, and reports whether the
// scheduler is busy (Busy).
func Yield() (busy bool) {
	if yieldHook != nil {
		yieldHook()
	}
	t := since()
	runtime.Gosched()
	now := since()
	notePass(now - t)
	return busyAt(now)
}
