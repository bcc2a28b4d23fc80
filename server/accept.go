package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/tbsphathuynh/proxy/internal/localfault"
)

// Accept errors are retried, never fatal. A listener that stops on one
// (net/http stops on ENOBUFS, which it does not count as temporary) turns a
// moment's shortage into an address that refuses every client for good; a
// listener that retries at once spins. So both listeners back off as
// net/http does for its temporary errors, 5 ms doubling to a second, and
// every failure is counted and logged, once a second at most.
const (
	acceptMinDelay = 5 * time.Millisecond
	acceptMaxDelay = time.Second
)

// acceptGuard accepts for one listening socket: the main listener's
// handoff loop or the admin listener. It hides accept errors from the
// server behind it, which then sees only connections or the end of the
// socket, so net/http's server and the fast path behave alike.
type acceptGuard struct {
	name string // "listen" or "admin.listen", for the log
	log  *slog.Logger
	// count counts an accept error by reason (proxy_accept_errors_total).
	count func(reason string)
	// reserve is the process's spare descriptors, given back when the
	// process runs out; nil holds none.
	reserve *localfault.Reserve
	// gated makes the listener, once the reserve was given back, wait
	// until it is whole again and as many descriptors are free besides
	// before it takes another client: the descriptors given back go to
	// health checks, the admin listener and connections to servers, not
	// to the next client in the backlog. The admin listener is not gated:
	// it is one of the things the reserve is for.
	gated bool
	// quit ends a backoff early: the socket is closing.
	quit <-chan struct{}

	every localfault.Every
	delay time.Duration
}

// accept returns the next connection of ln, retrying after failures, or
// net.ErrClosed once the socket is closed or quit closes.
func (g *acceptGuard) accept(ln net.Listener) (net.Conn, error) {
	for {
		if g.gated && !g.reserve.Whole() && !g.reserve.Refill(g.reserve.Size()) {
			// Descriptors are still short: leave the clients queued in
			// the socket's backlog, as nginx does when it has none, until
			// exchanges under way give some back.
			g.delay = nextDelay(g.delay)
			if !g.backoff() {
				return nil, net.ErrClosed
			}
			continue
		}
		c, err := ln.Accept()
		if err == nil {
			g.delay = 0
			return c, nil
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		g.delay = nextDelay(g.delay)
		g.failed(ln.Addr(), err)
		if !g.backoff() {
			return nil, net.ErrClosed
		}
	}
}

// nextDelay doubles the backoff from acceptMinDelay up to acceptMaxDelay.
func nextDelay(d time.Duration) time.Duration {
	return min(max(2*d, acceptMinDelay), acceptMaxDelay)
}

// failed counts and logs a failed accept and, when descriptors ran out,
// hands the reserve back so that health checks, the admin listener and the
// clients already connected can go on.
func (g *acceptGuard) failed(addr net.Addr, err error) {
	reason := localfault.Reason(err)
	released := 0
	if reason == localfault.EMFILE || reason == localfault.ENFILE {
		released = g.reserve.Release()
	}
	if reason == "" || reason == localfault.EADDRNOTAVAIL {
		reason = "other"
	}
	if g.count != nil {
		g.count(reason)
	}
	ok, n := g.every.Allow(time.Now())
	if !ok || g.log == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("listener", g.name), slog.String("addr", addr.String()),
		slog.String("reason", reason), slog.Int("errors", n),
		slog.Duration("retry_in", g.delay), slog.String("err", err.Error()),
	}
	if reason != "other" {
		attrs = append(attrs, slog.String("cause", localfault.Describe(reason)))
	}
	if released > 0 {
		attrs = append(attrs, slog.Int("reserve_released", released))
	}
	g.log.LogAttrs(context.Background(), slog.LevelError, "accept failed", attrs...)
}

// backoff waits out the current delay; false when quit closed meanwhile.
func (g *acceptGuard) backoff() bool {
	t := time.NewTimer(g.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-g.quit:
		return false
	}
}

// guardedListener is a listener whose Accept goes through a guard: the
// admin listener's.
type guardedListener struct {
	net.Listener
	g    *acceptGuard
	once sync.Once
	quit chan struct{}
}

func newGuardedListener(ln net.Listener, g *acceptGuard) *guardedListener {
	gl := &guardedListener{Listener: ln, g: g, quit: make(chan struct{})}
	g.quit = gl.quit
	return gl
}

func (l *guardedListener) Accept() (net.Conn, error) { return l.g.accept(l.Listener) }

func (l *guardedListener) Close() error {
	l.once.Do(func() { close(l.quit) })
	return l.Listener.Close()
}
