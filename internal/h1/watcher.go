package h1

import (
	"sync"
	"time"

	"github.com/tbsphathuynh/proxy/internal/gctune"
)

// watchTick is how often the watcher looks for requests that have run for
// watchDelay: a request's watch starts between watchDelay and watchDelay +
// watchTick after the request began.
const watchTick = watchDelay / 2

// watchLinger is how long the watcher's goroutine stays after the last
// request it had to look at, so that a steady trickle of requests does not
// start one each time, and an idle server runs nothing.
const watchLinger = time.Second

// watcher starts the client-gone watch of every request that has run for
// watchDelay, from one goroutine per server that ticks while requests come,
// rather than from a timer per request. A timer due before every other
// timer of its P makes the runtime wake a second thread to poll for it
// (wakeNetPoller), and a request's short timer nearly always is: below
// saturation that was one thread wake-up per request, which on a VM costs
// as much as the request's own work (docs/performance.md, "Below
// saturation").
type watcher struct {
	mu sync.Mutex
	// head and tail list the connections whose request is armed, oldest
	// first: they are appended as they arm.
	head, tail *conn
	running    bool
	stopping   bool
	// done is closed when the goroutine started last returns.
	done chan struct{}
}

// arm lists c, whose request begins now.
func (w *watcher) arm(c *conn) {
	c.wSince = time.Now()
	w.mu.Lock()
	c.wPrev, c.wNext = w.tail, nil
	if w.tail != nil {
		w.tail.wNext = c
	} else {
		w.head = c
	}
	w.tail = c
	c.wListed = true
	start := !w.running
	if start {
		w.running = true
		w.done = make(chan struct{})
	}
	done := w.done
	w.mu.Unlock()
	if start {
		go w.run(done)
	}
}

// disarm takes c off the list, if it is still there.
func (w *watcher) disarm(c *conn) {
	w.mu.Lock()
	w.unlink(c)
	w.mu.Unlock()
}

func (w *watcher) unlink(c *conn) {
	if !c.wListed {
		return
	}
	if c.wPrev != nil {
		c.wPrev.wNext = c.wNext
	} else {
		w.head = c.wNext
	}
	if c.wNext != nil {
		c.wNext.wPrev = c.wPrev
	} else {
		w.tail = c.wPrev
	}
	c.wPrev, c.wNext, c.wListed = nil, nil, false
}

// stop makes the goroutine return as soon as no request is listed, and
// returns a channel closed when it has (nil if none runs). Requests armed
// later start another.
func (w *watcher) stop() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopping = true
	if !w.running {
		return nil
	}
	return w.done
}

func (w *watcher) run(done chan struct{}) {
	defer close(done)
	// The watcher runs while requests come: the process's memory is
	// trimmed once no server's does (gctune.Quiet).
	gctune.Busy()
	defer gctune.Quiet()
	t := time.NewTicker(watchTick)
	defer t.Stop()
	var idleSince time.Time
	for now := range t.C {
		w.mu.Lock()
		// The monotonic clock of the tick and of each arm compare.
		for c := w.head; c != nil && now.Sub(c.wSince) >= watchDelay; c = w.head {
			w.unlink(c)
			c.startWatch()
		}
		switch {
		case w.head != nil:
			idleSince = time.Time{}
		case idleSince.IsZero():
			idleSince = now
		}
		if w.head == nil && (w.stopping || now.Sub(idleSince) >= watchLinger) {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
	}
}
