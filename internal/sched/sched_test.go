package sched

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// queue runs n goroutines that yield in a loop, so that on one P n-1 of
// them are always ready to run, until stop is called.
func queue(n int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
					runtime.Gosched()
				}
			}
		})
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

// fakeCPU has the process's CPU time grow at share of the wall time for
// each P, whatever the test machine gives it, and counts its readings.
func fakeCPU(t *testing.T, share float64) (readings *int) {
	readings = new(int)
	old := processCPU
	processCPU = func() (time.Duration, bool) {
		*readings++
		return time.Duration(share * float64(runtime.GOMAXPROCS(0)) * float64(since())), true
	}
	t.Cleanup(func() {
		sampling.Lock()
		processCPU = old
		sampling.Unlock()
	})
	return readings
}

// Goroutines ready to run, more than busyPerP for each P, while our
// threads have the CPU, make the scheduler busy: a goroutine that parked
// would wait for the queue to empty. Once they are done it is idle again.
func TestBusyWhileOurGoroutinesQueue(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	fakeCPU(t, 1)
	waitIdle(t)
	stop := queue(2 * busyPerP)
	busy := false
	for deadline := time.Now().Add(5 * time.Second); !busy && time.Now().Before(deadline); {
		busy = Yield()
	}
	stop()
	if !busy {
		t.Errorf("yields said idle for 5 s beside %d goroutines ready to run on one P", 2*busyPerP)
	}
	waitIdle(t)
}

// The same queue while our threads get little of the CPU (another
// process has it) is not busy: a spin would take CPU the proxy is short
// of, and the queue's wait delays the wake-up it saves anyway.
func TestQueueWithoutTheCPUIsNotBusy(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	readings := fakeCPU(t, 0.3)
	waitIdle(t)
	stop := queue(2 * busyPerP)
	defer stop()
	busy := false
	for deadline := time.Now().Add(5 * time.Second); *readings < 10 && time.Now().Before(deadline); {
		busy = Yield() || busy
	}
	if *readings < 10 {
		t.Fatalf("the CPU was read %d times in 5 s beside %d goroutines ready to run", *readings, 2*busyPerP)
	}
	if busy {
		t.Error("yields said busy while the process had 30% of the CPU")
	}
}

// A yield that takes long because something else has the CPU does not
// make the scheduler busy when nothing of ours queues behind it: it is
// what the kernel's preemption by another process looks like from
// inside, and spinning then only took CPU from that process (issue 17).
// Here one goroutine keeps the only P for 20 ms at a time.
func TestLongYieldAloneIsNotBusy(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	waitIdle(t)
	for range 3 {
		ran := make(chan struct{})
		go func() {
			for start := time.Now(); time.Since(start) < 20*time.Millisecond; {
			}
			close(ran)
		}()
		for {
			start := time.Now()
			busy := Yield()
			if time.Since(start) > 5*time.Millisecond && busy {
				t.Fatalf("a yield of %v behind one goroutine said busy", time.Since(start))
			}
			select {
			case <-ran:
			default:
				continue
			}
			break
		}
	}
}

// waitIdle yields until a yield says the scheduler is idle: a test before
// may have left goroutines queued.
func waitIdle(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); Yield(); {
		if time.Now().After(deadline) {
			t.Fatal("yields with nothing else to run still said busy after 5 s")
		}
	}
}

func TestYieldSaysIdleWithNothingElseToRun(t *testing.T) { waitIdle(t) }

// waitPast polls until more than d has passed since start, on since's
// clock.
func waitPast(start, d time.Duration) {
	for since()-start <= d {
		time.Sleep(time.Millisecond)
	}
}

func TestPeerThatAnswersAtOnceIsQuick(t *testing.T) {
	var p Peer
	if !p.Quick() || !p.YieldFirst() || p.BoundedParks() != MaxBoundedParks {
		t.Fatal("a new peer is not quick")
	}
	// Found by the first read, or within the quick wait of a read that
	// found nothing (made long, for a loaded test machine).
	defer pass.Store(0)
	pass.Store(int64(time.Second))
	p.Got()
	p.Missed()
	p.Got()
	if !p.Quick() {
		t.Error("a peer whose bytes came within the quick wait is not quick")
	}
}

func TestPeerThatPausesIsSlowUntilItAnswersAtOnce(t *testing.T) {
	pass.Store(0)
	var p Peer
	p.Missed()
	waitPast(since(), quickWait())
	// A wait is timed from its first read that found nothing, not its
	// last.
	p.Missed()
	p.Got()
	if p.Quick() || p.YieldFirst() || p.BoundedParks() != 0 {
		t.Fatalf("after a wait past QuickWait: quick %v, yield first %v, %d bounded parks; want false, false, 0",
			p.Quick(), p.YieldFirst(), p.BoundedParks())
	}
	// Every probeEvery-th slow wait yields first all the same.
	var yields []int
	for i := 2; i <= 2*probeEvery; i++ {
		p.Missed()
		p.missedAt -= time.Second // as if the wait had been slow
		p.Got()
		if p.YieldFirst() {
			yields = append(yields, i)
		}
	}
	if want := []int{probeEvery, 2 * probeEvery}; fmt.Sprint(yields) != fmt.Sprint(want) {
		t.Errorf("slow waits after which the next yields first: %v, want %v", yields, want)
	}
	// The next wait is timed from its own first miss (with a quick wait
	// made long, for a loaded test machine).
	defer pass.Store(0)
	pass.Store(int64(10 * time.Millisecond))
	p.Missed()
	p.Got()
	if !p.Quick() {
		t.Error("a slow peer whose bytes came within the quick wait is still slow")
	}
	// A probe whose first read finds the bytes makes the peer quick.
	p = Peer{slow: probeEvery}
	p.Got()
	if !p.Quick() {
		t.Error("a slow peer whose bytes the first read found is still slow")
	}
}

func TestPeerSlowForGoodIsStillSlow(t *testing.T) {
	p := Peer{slow: 255}
	p.Missed()
	p.missedAt -= time.Second
	p.Got()
	if p.Quick() {
		t.Error("the 256th slow wait in a row made the peer quick")
	}
}

// Under load a goroutine may wait two passes through the run queue for
// its turn, however quick its peer: a wait that long is still quick.
func TestQuickWaitFollowsThePass(t *testing.T) {
	defer pass.Store(0)
	pass.Store(0)
	notePass(10 * QuickWait)
	if got := quickWait(); got != 20*QuickWait {
		t.Fatalf("quick wait %v after a pass of %v, want %v", got, 10*QuickWait, 20*QuickWait)
	}
	var p Peer
	p.Missed()
	p.missedAt -= 5 * QuickWait
	p.Got()
	if !p.Quick() {
		t.Error("a wait of 5 QuickWait, within two passes, made the peer slow")
	}
	// Shorter passes bring it down an eighth at a time.
	for range 100 {
		notePass(0)
	}
	if got := quickWait(); got != QuickWait {
		t.Errorf("quick wait %v after 100 short passes, want %v", got, QuickWait)
	}
}

// A wait begins with a yield while the scheduler is busy, unless the
// peer's bytes are already there or the peer is slow (and this is not one
// of its probes). While it is idle it does not: the yield would wake
// another thread for nothing.
func TestWaitBeginsWithAYieldOnlyForAQuickPeerWhileBusy(t *testing.T) {
	var yields int
	yieldHook = func() { yields++ }
	defer func() { yieldHook = nil }()
	yielded := func(w *Wait, pending bool) bool {
		yields = 0
		w.Begin(pending)
		return yields > 0
	}
	var w Wait
	yieldHook = nil
	waitIdle(t)
	yieldHook = func() { yields++ }
	if yielded(&w, true) {
		t.Error("a wait for a quick peer began with a yield while the scheduler was idle")
	}

	defer AlwaysBusy()()
	if !yielded(&w, true) {
		t.Error("a wait for a quick peer began without a yield")
	}
	if yielded(&w, false) {
		t.Error("a wait whose bytes were already there began with a yield")
	}
	w.Peer = Peer{slow: 1}
	if yielded(&w, true) {
		t.Error("a wait for a slow peer began with a yield")
	}
	w.Peer = Peer{slow: probeEvery}
	if !yielded(&w, true) {
		t.Error("a slow peer's probe began without a yield")
	}
}

// A read that finds nothing spins and then bounds its parks only while
// the scheduler is busy, and only for a quick peer; otherwise it parks as
// usual, for the poller to wake it.
func TestWaitSpinsAndBoundsOnlyWhileBusy(t *testing.T) {
	for _, tc := range []struct {
		name         string
		busy         bool
		peer         Peer
		spins, parks int
	}{
		{"busy, quick peer", true, Peer{}, MaxSpins, MaxBoundedParks},
		{"busy, slow peer", true, Peer{slow: 1}, 0, 0},
		{"idle, quick peer", false, Peer{}, 0, 0},
		{"idle, slow peer", false, Peer{slow: 1}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := Wait{Peer: tc.peer}
			w.busy = tc.busy
			for range 100 {
				spin, bound := w.Empty(true)
				if spin {
					w.spins++ // as Spin, without the yield's verdict
				} else if bound {
					w.Bound()
				} else {
					break
				}
			}
			if w.Spins() != tc.spins || w.Parks() != tc.parks {
				t.Errorf("%d reads retried and %d bounded parks, want %d and %d", w.Spins(), w.Parks(), tc.spins, tc.parks)
			}
		})
	}
}
