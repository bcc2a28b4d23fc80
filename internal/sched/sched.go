// Package sched keeps a goroutine that waits for a socket under load off
// the network poller's waiting list.
//
// Go's scheduler polls the network only when its run queues are empty, or
// from its monitor thread every 10 ms. A saturated proxy's queues are
// never empty, so a goroutine that parks on a read whose bytes come a
// moment later is woken up to 10 ms late, while the goroutines that never
// parked keep cycling: that wait was our p99 (docs/performance.md). A
// goroutine whose read finds nothing while the scheduler is busy yields
// and reads again instead, up to MaxSpins times; when it has been idle a
// while the poller runs soon and parking costs nothing. Only a wait for a
// peer that answers at once does so (Peer): for a client that pauses
// between requests, or a server that takes its time, the reads would
// find nothing. Wait holds that policy for a connection.
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

// A goroutine that parks anyway is woken after ParkSlice to read again,
// up to MaxBoundedParks times in one wait: the scheduler may be idle when
// it parks and busy a moment later, and then its bytes wait for the queue
// to empty. A deadline's timer, unlike the poller, runs however busy the
// queue is.
const (
	ParkSlice       = time.Millisecond
	MaxBoundedParks = 2
)

// busyAfter is how long a yield must take to say the scheduler is busy:
// below a pass through the run queue of a proxy saturated by many
// connections (a millisecond or more at 64), where a parked goroutine
// waits longest, and above one with a few connections at work, whose
// queue empties often enough for parking to be cheap: there, goroutines
// that spin would keep the queue from emptying and make the few that
// parked wait (at 4 connections p99 went from 1.4 to 6 ms with 50 µs).
// It is atomic only for AlwaysBusy.
var busyAfter atomic.Int64

// busyWindow is how long the scheduler stays busy after a yield found it
// so. One goroutine's quick yield says little: the queue may be short for
// a moment between two passes, and a goroutine that parks then waits for
// the next time it is empty, which under load is sysmon's 10 ms. Parking
// is safe once no yield has found the scheduler busy for about a pass
// through a saturated queue.
const busyWindow = 2 * time.Millisecond

// lastBusy is when a yield last found the scheduler busy, on the clock of
// since; it is written at most every busyRefresh, so that yields on many
// processors do not all write one cache line.
var lastBusy atomic.Int64

func init() {
	busyAfter.Store(int64(300 * time.Microsecond))
	lastBusy.Store(int64(-busyWindow))
}

const busyRefresh = 100 * time.Microsecond

// epoch starts the monotonic clock yields are timed on.
var epoch = time.Now()

func since() time.Duration { return time.Since(epoch) }

// AlwaysBusy has every yield say the scheduler is busy until restore is
// called: for tests of the reads that spin, which an idle test machine
// would otherwise hardly ever take. Meanwhile the quick wait stays at
// QuickWait, so that a test's pauses count as slow however long a yield
// of a loaded test machine takes.
func AlwaysBusy() (restore func()) {
	old := busyAfter.Swap(-1)
	frozen.Store(true)
	oldPass := pass.Swap(0)
	return func() {
		busyAfter.Store(old)
		pass.Store(oldPass)
		frozen.Store(false)
	}
}

// Yield lets the goroutines ready to run go first, and reports whether the
// scheduler is busy: whether they took longer than busyAfter, here or in
// any yield in the last busyWindow.
func Yield() (busy bool) {
	t := since()
	runtime.Gosched()
	now := since()
	notePass(now - t)
	last := time.Duration(lastBusy.Load())
	if now-t > time.Duration(busyAfter.Load()) {
		if now-last > busyRefresh {
			lastBusy.Store(int64(now))
		}
		return true
	}
	return now-last < busyWindow
}

// pass is about the longest a yield has taken of late: how long a
// goroutine ready to run waits for its turn. It follows a longer yield at
// once and a shorter one by an eighth at a time, and is written only when
// it moves by more than that, so that yields on many processors seldom
// write it.
var pass atomic.Int64

// frozen keeps pass at 0 while AlwaysBusy is on.
var frozen atomic.Bool

func notePass(d time.Duration) {
	if frozen.Load() {
		return
	}
	old := time.Duration(pass.Load())
	if d > old+old/8 {
		pass.Store(int64(d))
	} else if d < old-old/8 {
		pass.Store(int64(old - old/8))
	}
}

// QuickWait is the least bound on a quick wait: a wait for a peer's
// bytes is quick if they come within max(QuickWait, two passes) of the
// first read that found nothing. 5 ms is a few passes through the run
// queue of a proxy saturated by 64 connections, so that it keeps spinning
// for clients that send their next request at once, and less than the
// pauses of clients that think between requests. Under heavier load two
// passes bound it, since a parked goroutine may wait that long for its
// turn however quick its peer. (At 2 ms, the saturated proxy took some of
// its clients for slow, and never reached the throughput it reaches at
// times with all of them quick.)
const QuickWait = 5 * time.Millisecond

func quickWait() time.Duration { return max(QuickWait, 2*time.Duration(pass.Load())) }

// probeEvery is how often a slow peer's wait yields before its first
// read all the same, to notice that the peer has become quick: a wait that
// parks at once under load is woken late, and would take any peer for
// slow, while under load a quick peer's bytes come during the yield.
const probeEvery = 8

// Peer remembers how quickly a connection's peer sent its bytes, so that
// only waits for a peer that answers at once yield first, spin, and bound
// their parks. Those pay where a saturated queue would leave
// a parked goroutine waiting. For a client that pauses between requests,
// or a server that takes its time, they are system calls and timer
// wake-ups that find nothing: with clients pausing 10 ms between
// requests, the proxy spent 87–95 µs of CPU per request, and 74–83 with
// Peer, where nginx spends 45–51 (docs/performance.md). One goroutine at
// a time uses it, the one reading the connection.
type Peer struct {
	missedAt time.Duration // since() at the wait's first read that found nothing
	missed   bool
	// slow counts the waits in a row that were not quick; 0: the last
	// one was.
	slow uint8
}

// Quick reports whether the last wait was quick, so that the next one
// may spin.
func (p *Peer) Quick() bool { return p.slow == 0 }

// BoundedParks is how many parks of the next wait are to be bounded to
// ParkSlice: MaxBoundedParks for a quick peer, none for a slow one. A
// slow peer's bound would mostly wake a read that finds nothing: with
// clients pausing 10 ms between requests it cost 1.8 more such reads per
// request and 8–12% more CPU per request, and did not move p99 or CPU at
// saturation (docs/performance.md). Under load, the probes (YieldFirst)
// are what bring a peer back from slow.
func (p *Peer) BoundedParks() int {
	if p.slow == 0 {
		return MaxBoundedParks
	}
	return 0
}

// YieldFirst reports whether the next wait should yield before its first
// read: the last wait was quick, or a probe is due.
func (p *Peer) YieldFirst() bool { return p.slow%probeEvery == 0 }

// Missed records a read that found nothing.
func (p *Peer) Missed() {
	if !p.missed {
		p.missed, p.missedAt = true, since()
	}
}

// Got records a read that found bytes, which ends the wait.
func (p *Peer) Got() {
	if !p.missed {
		p.slow = 0
		return
	}
	p.missed = false
	if since()-p.missedAt <= quickWait() {
		p.slow = 0
	} else if p.slow++; p.slow == 0 {
		p.slow = 1 // wrapped: still slow
	}
}

// Wait is a connection's side of its waits for the peer's bytes: the
// Peer, whether the last yield found the scheduler busy, and the reads
// retried and the parks bounded in the current wait. It holds the policy
// the client connections of package h1 and the server connections of
// package forward share; each keeps the deadlines its parks bound. One
// goroutine at a time uses it, the one reading the connection.
type Wait struct {
	Peer
	busy         bool
	spins, parks int
}

// Begin starts a wait: after a request was answered, for the client's
// next one, or after a request was written, for the server's answer.
// Unless the peer's bytes are already buffered (pending false) or the
// peer is slow, the goroutines ready to run go first, so that the first
// read usually finds the bytes instead of finding nothing and parking.
func (w *Wait) Begin(pending bool) {
	w.busy, w.spins, w.parks = false, 0, 0
	if pending && w.YieldFirst() {
		w.Yield()
	}
}

// Yield lets the goroutines ready to run go first (the package's Yield),
// and remembers whether the scheduler was busy.
func (w *Wait) Yield() { w.busy = Yield() }

// Empty says what a read that found nothing, other than one after a
// bounded park's wake-up, is to do: spin, that is yield and read again,
// while the scheduler is busy, up to MaxSpins times, for a quick peer;
// else bound the park to come to ParkSlice, BoundedParks times, when the
// caller can (canBound: it knows the deadline to put back); else neither,
// and park as usual.
func (w *Wait) Empty(canBound bool) (spin, bound bool) {
	switch {
	case w.busy && w.spins < MaxSpins && w.Quick():
		return true, false
	case canBound && w.parks < w.BoundedParks():
		return false, true
	}
	return false, false
}

// Spin yields before a read that found nothing is retried.
func (w *Wait) Spin() {
	w.spins++
	w.Yield()
}

// Bound counts a park bounded to ParkSlice.
func (w *Wait) Bound() { w.parks++ }

// Spins is how many reads the current wait retried after yielding.
func (w *Wait) Spins() int { return w.spins }

// Parks is how many of the current wait's parks were bounded.
func (w *Wait) Parks() int { return w.parks }
