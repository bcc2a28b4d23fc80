package upstream

import (
	"slices"
	"sync"
	"time"
)

// This file holds what a State owns besides its counters: its timers and
// the pools that list it. Both live here, not in the runtime that armed a
// timer or built a pool, because a reload replaces runtimes while requests
// still finish on the old one: an outcome that lands on a replaced
// runtime's breaker must still arm the one half-open timer the server has,
// and rebuild the snapshot of the pool that serves now.

// Timer names one of the timers a State owns.
type Timer int

// The timers of a State.
const (
	// HalfOpenTimer turns an open circuit half-open.
	HalfOpenTimer Timer = iota
	// ReadmitTimer ends a passive ejection.
	ReadmitTimer
	numTimers
)

// life is the part of a State that is neither atomic nor lock free.
type life struct {
	// mu guards timers, retired and pools.
	mu      sync.Mutex
	timers  [numTimers]*time.Timer
	retired bool
	// wg counts armed and running timer callbacks, so Retire can wait for
	// one that already started.
	wg sync.WaitGroup

	// pools lists the pools built over this state; the slice is replaced,
	// never changed in place, so changed can use it after unlocking.
	pools []*Pool
}

// Schedule arms timer k to call f after d, replacing whatever k was set
// to do before: a State has one timer of each kind whichever runtime arms
// it, so a reload neither loses nor doubles it. It reports false, arming
// nothing, once the State is retired. f runs on its own goroutine.
func (s *State) Schedule(k Timer, d time.Duration, f func()) bool {
	l := &s.life
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.retired {
		return false
	}
	if old := l.timers[k]; old != nil && old.Stop() {
		l.wg.Done()
	}
	l.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		defer l.wg.Done()
		// Schedule holds mu until t is set, so this reads the right t.
		l.mu.Lock()
		if l.timers[k] == t {
			l.timers[k] = nil
		}
		l.mu.Unlock()
		f()
	})
	l.timers[k] = t
	return true
}

// Unschedule stops timer k if it is armed.
func (s *State) Unschedule(k Timer) {
	l := &s.life
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.timers[k]; t != nil {
		if t.Stop() {
			l.wg.Done()
		}
		l.timers[k] = nil
	}
}

// Scheduled reports whether timer k is armed and has not fired.
func (s *State) Scheduled(k Timer) bool {
	l := &s.life
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.timers[k] != nil
}

// Retire stops the State's timers for good and waits for a callback that
// is running. The Registry retires a state when its server leaves the
// config, and every state on Close; outcomes that land on a retired state
// later still count, but arm nothing.
func (s *State) Retire() {
	l := &s.life
	l.mu.Lock()
	l.retired = true
	for k, t := range l.timers {
		if t != nil && t.Stop() {
			l.wg.Done()
		}
		l.timers[k] = nil
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// join lists p among the pools to refresh on a transition.
func (s *State) join(p *Pool) {
	l := &s.life
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pools = append(slices.Clip(l.pools), p)
}

// leave undoes join.
func (s *State) leave(p *Pool) {
	l := &s.life
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pools = slices.DeleteFunc(slices.Clone(l.pools), func(q *Pool) bool { return q == p })
}

// changed rebuilds the snapshot of every pool that lists the state, after
// a transition that may change whether the server is usable. Whoever made
// the transition calls it, whichever runtime it belongs to.
func (s *State) changed(now time.Time) {
	l := &s.life
	l.mu.Lock()
	pools := l.pools
	l.mu.Unlock()
	for _, p := range pools {
		p.Refresh(now)
	}
}
