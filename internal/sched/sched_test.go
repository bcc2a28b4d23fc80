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
		t.Error("Yield said idle while another goroutine ran for 1 ms")
	}
	<-ran
}

func TestYieldSaysIdleWithNothingElseToRun(t *testing.T) {
	// A machine under load may hold up a yield now and then: one that
	// says idle among many is enough.
	for range 1000 {
		if !Yield() {
			return
		}
	}
	t.Error("1000 yields with nothing else to run all said busy")
}

func TestAlwaysBusy(t *testing.T) {
	restore := AlwaysBusy()
	if !Yield() {
		t.Error("Yield said idle under AlwaysBusy")
	}
	restore()
	TestYieldSaysIdleWithNothingElseToRun(t)
}
