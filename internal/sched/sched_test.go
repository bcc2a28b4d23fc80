package sched

import (
	"runtime"
	"testing"
	"time"
)

func TestYieldSaysBusyWhileOthersRun(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	ran := make(chan struct{})
	go func() {
		// Ready to run when Yield gives way, and running for longer than
		// busyAfter.
		for start := time.Now(); time.Since(start) < 20*time.Duration(busyAfter.Load()); {
		}
		close(ran)
	}()
	if !Yield() {
		t.Error("Yield said idle while another goroutine ran for 20 times busyAfter")
	}
	<-ran
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
