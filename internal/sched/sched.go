// Package sched keeps a goroutine that waits for a socket under load off
// the network poller's waiting list.
//
// Go's scheduler polls the network only when its run queues are empty, or
// from its monitor thread every 10 ms. A saturated proxy's queues are
// never empty, so a goroutine that parks on a read whose bytes come a
// moment later is woken up to 10 ms late, while the goroutines that never
// parked keep cycling: that wait was our p99 (docs/performance.md). A
// goroutine whose read finds nothing while others are ready to run yields
// and reads again instead, as long as the scheduler stays busy and up to
// MaxSpins times; when it is not busy the poller runs soon and parking
// costs nothing.
package sched

import (
	"runtime"
	"sync/atomic"
	"time"
)

// MaxSpins bounds the reads a goroutine retries after yielding before it
// parks: at saturation one pass through the run queue takes about a
// millisecond, so a server's answer or a client's next request normally
// comes within one or two, and an idle connection gives up soon.
const MaxSpins = 16

// busyAfter is how long a yield must take to say the scheduler is busy:
// far above a yield with nothing else to run (well under a microsecond),
// far below a pass through a saturated proxy's queue. It is atomic only
// for AlwaysBusy.
var busyAfter atomic.Int64

func init() { busyAfter.Store(int64(50 * time.Microsecond)) }

// AlwaysBusy has every yield say the scheduler is busy until restore is
// called: for tests of the reads that spin, which an idle test machine
// would otherwise hardly ever take.
func AlwaysBusy() (restore func()) {
	old := busyAfter.Swap(-1)
	return func() { busyAfter.Store(old) }
}

// Yield lets the goroutines ready to run go first, and reports whether the
// scheduler is busy: whether they took longer than busyAfter.
func Yield() (busy bool) {
	t := time.Now()
	runtime.Gosched()
	return time.Since(t) > time.Duration(busyAfter.Load())
}
