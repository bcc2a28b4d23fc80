// Package sched keeps a goroutine that waits for a socket under load off
// the network poller's waiting list.
//
// Go's scheduler polls the network only when its run queues are empty, or
// from its monitor thread every 10 ms. A saturated proxy's queues are
// never empty, so a goroutine that parks on a read whose bytes come a
// moment later is woken up to 10 ms late, while the goroutines that never
// parked keep cycling: that wait was our p99 (docs/performance.md). A
// goroutine whose read finds nothing while the scheduler is busy, that is
// while our own goroutines queue for Ps that have the CPU (Busy), yields
// and reads again instead, up to MaxSpins times; otherwise a P soon
// finds its queue empty and polls, and parking costs nothing. Only a wait
// for a peer that answers at once does so (Peer): for a client that
// pauses between requests, or a server that takes its time, the reads
// would find nothing. Wait holds that policy for a connection.
package sched

import (
	"sync/atomic"
	"time"
)

// MaxSpins bounds the reads a goroutine retries after yielding before it
// parks: at saturation one pass through the run queue takes about a
// millisecond, so a server's answer or a client's next request normally
// comes within one or two, and an idle connection gives up soon.
const MaxSpins = 16

// A goroutine that parks anyway while the scheduler is busy is woken
// after ParkSlice to read again, up to MaxBoundedParks times in one wait:
// its bytes would wait for a queue to empty. A deadline's timer, unlike
// the poller, runs however busy the queue is. While the scheduler is not
// busy the poller runs soon, and the wake-ups found nothing (issue 17).
const (
	ParkSlice       = time.Millisecond
	MaxBoundedParks = 2
)

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
// While the scheduler is busy, unless the peer's bytes are already
// buffered (pending false) or the peer is slow, the goroutines ready to
// run go first, so that the first read usually finds the bytes instead of
// finding nothing and parking. Not while it is idle: a yield then wakes
// another thread to look for the work it puts back (runtime.Gosched
// readies an idle P), a system call and a thread's spin for each request
// that a read finding nothing costs less than.
func (w *Wait) Begin(pending bool) {
	w.spins, w.parks = 0, 0
	w.busy = Busy()
	if w.busy && pending && w.YieldFirst() {
		w.Yield()
	}
}

// Yield lets the goroutines ready to run go first (the package's Yield),
// and remembers whether the scheduler was busy.
func (w *Wait) Yield() { w.busy = Yield() }

// Empty says what a read that found nothing, other than one after a
// bounded park's wake-up, is to do. While the scheduler is busy (as the
// wait's last yield found it), for a quick peer: spin, that is yield and
// read again, up to MaxSpins times; then bound the park to come to
// ParkSlice, BoundedParks times, when the caller can (canBound: it knows
// the deadline to put back). Else park as usual: with the scheduler not
// busy, a P soon finds its queue empty and polls, and a bounded park's
// wake-up would mostly find nothing.
func (w *Wait) Empty(canBound bool) (spin, bound bool) {
	switch {
	case !w.busy:
		return false, false
	case w.spins < MaxSpins && w.Quick():
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
