package sched

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

func TestYieldSaysBusyWhileOthersRun(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	// The other goroutine may run outside any yield: the scheduler's
	// fairness rule now and then runs the yielding goroutine again first,
	// and a collection's preemption can put this one behind the other
	// before it yields. So the other runs a few times over, and one yield
	// that let it run must say busy.
	for range 5 {
		if othersRunDuringYields() {
			return
		}
	}
	t.Error("Yield said idle five times while another goroutine ran for 20 times busyAfter")
}

// othersRunDuringYields yields until a goroutine that runs for 20 times
// busyAfter is done, and reports whether any yield said busy.
func othersRunDuringYields() (busy bool) {
	ran := make(chan struct{})
	go func() {
		for start := time.Now(); time.Since(start) < 20*time.Duration(busyAfter.Load()); {
		}
		close(ran)
	}()
	for {
		busy = Yield() || busy
		select {
		case <-ran:
			return busy
		default:
		}
	}
}

// waitIdle yields until a yield says the scheduler is idle, which takes
// busyWindow after the last busy one.
func waitIdle(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); Yield(); {
		if time.Now().After(deadline) {
			t.Fatal("yields with nothing else to run still said busy after 5 s")
		}
	}
}

func TestYieldSaysIdleWithNothingElseToRun(t *testing.T) { waitIdle(t) }

// One goroutine's quick yield after another's slow one still says busy:
// the queue may be short only for a moment.
func TestYieldStaysBusyForAWhile(t *testing.T) {
	waitIdle(t)
	restore := AlwaysBusy()
	busy := Yield()
	start := since()
	restore()
	quick := Yield()
	if !busy {
		t.Fatal("Yield said idle under AlwaysBusy")
	}
	if !quick && since()-start < time.Millisecond {
		t.Errorf("a quick yield %v after a busy one said idle", since()-start)
	}
	waitIdle(t)
}

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

// A wait begins with a yield, unless the peer's bytes are already there
// or the peer is slow (and this is not one of its probes); the yield is
// what tells the wait whether the scheduler is busy.
func TestWaitBeginsWithAYieldOnlyForAQuickPeer(t *testing.T) {
	defer AlwaysBusy()() // every yield says busy, so a yield shows
	yielded := func(w *Wait, pending bool) bool {
		w.busy = false
		w.Begin(pending)
		return w.busy
	}
	var w Wait
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
