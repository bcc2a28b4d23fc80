package donehook

import (
	"context"
	"testing"
	"time"
)

// conn is a connection's context with its hook, as a server sets it up.
func conn(t *testing.T) (context.Context, func()) {
	t.Helper()
	h := new(Hook)
	ctx, cancel := context.WithCancel(context.Background())
	ctx = With(ctx, h)
	// A request's context is the connection's with values added.
	ctx = context.WithValue(ctx, struct{ k int }{1}, "request")
	return ctx, func() { cancel(); h.Fire() }
}

func counter() (*func(), chan struct{}) {
	ran := make(chan struct{}, 4)
	f := func() { ran <- struct{}{} }
	return &f, ran
}

func waitRan(t *testing.T, ran chan struct{}) {
	t.Helper()
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("the function did not run when the context ended")
	}
}

func notRan(t *testing.T, ran chan struct{}) {
	t.Helper()
	// Fire and After start the function on a goroutine: give a wrongly
	// started one every chance to show up.
	for range 100 {
		select {
		case <-ran:
			t.Fatal("the function ran after Stop")
		default:
			time.Sleep(time.Millisecond)
		}
	}
}

func TestRunsWhenConnectionEnds(t *testing.T) {
	ctx, end := conn(t)
	f, ran := counter()
	r := After(ctx, f)
	if r.h == nil {
		t.Fatal("the hook was not used for the connection's own context")
	}
	end()
	waitRan(t, ran)
	if r.Stop() {
		t.Error("Stop reported stopping a function that had run")
	}
}

func TestStopKeepsItFromRunning(t *testing.T) {
	ctx, end := conn(t)
	f, ran := counter()
	r := After(ctx, f)
	if !r.Stop() {
		t.Fatal("Stop did not report stopping")
	}
	end()
	notRan(t, ran)

	// The slot is free again for the connection's next request.
	if r := After(ctx, f); r.h == nil {
		t.Error("the next request did not get the hook")
	}
}

func TestContextAlreadyEnded(t *testing.T) {
	ctx, end := conn(t)
	end()
	f, ran := counter()
	r := After(ctx, f)
	waitRan(t, ran)
	if r.Stop() {
		t.Error("Stop reported stopping a function that had run")
	}
}

// A context that can end before the connection's (a per-try timeout) is
// not the hook's to watch: After falls back to context.AfterFunc.
func TestFallsBackForOtherContexts(t *testing.T) {
	ctx, end := conn(t)
	defer end()
	tryCtx, cancel := context.WithCancel(ctx)
	f, ran := counter()
	r := After(tryCtx, f)
	if r.h != nil {
		t.Fatal("the hook was used for a context that ends on its own")
	}
	cancel()
	waitRan(t, ran)

	g, ranG := counter()
	After(context.Background(), g)
	notRan(t, ranG)
}

func TestSecondRegistrationFallsBack(t *testing.T) {
	ctx, end := conn(t)
	f, ran := counter()
	g, ranG := counter()
	r1 := After(ctx, f)
	r2 := After(ctx, g)
	if r1.h == nil || r2.h != nil {
		t.Fatal("want the first registration on the hook and the second on context.AfterFunc")
	}
	end()
	waitRan(t, ran)
	waitRan(t, ranG)
}

// Fire racing After: the function runs exactly once whichever comes first.
func TestFireRacingAfter(t *testing.T) {
	for range 200 {
		ctx, end := conn(t)
		f, ran := counter()
		go end()
		After(ctx, f)
		waitRan(t, ran)
		select {
		case <-ran:
			t.Fatal("the function ran twice")
		case <-time.After(time.Millisecond):
		}
	}
}

func BenchmarkAfterStop(b *testing.B) {
	h := new(Hook)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx = context.WithValue(With(ctx, h), struct{ k int }{1}, "request")
	f := func() {}
	b.ReportAllocs()
	for b.Loop() {
		After(ctx, &f).Stop()
	}
}

func BenchmarkAfterFuncStop(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx = context.WithValue(ctx, struct{ k int }{1}, "request")
	f := func() {}
	b.ReportAllocs()
	for b.Loop() {
		context.AfterFunc(ctx, f)()
	}
}
