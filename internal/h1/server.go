// Package h1 serves plain HTTP/1.1 connections with a request parser and a
// response writer of its own, and hands every connection it would not
// serve exactly as net/http does to a net/http server.
//
// It exists for CPU and memory: net/http's server keeps two 4 KiB buffers
// and a grown goroutine stack for each connection's whole life, parses
// every head into fresh maps, starts a background read per request and
// clones the response header; on a proxy that does little else, that is
// most of the cost of a request (docs/performance.md). Here a connection
// borrows its buffers only while bytes are in flight, the head is parsed
// in place into a reused header map, and a response is written with one
// system call when it fits.
//
// Only the common case takes the fast path: HTTP/1.1 requests with
// origin-form targets, CRLF line ends, one Host and at most one plain
// Content-Length. Anything else (chunked or Expect bodies, upgrades, h2c,
// HTTP/1.0, oversized or malformed heads) goes to net/http together with
// the bytes already read, and stays there for the rest of the connection;
// net/http then serves it or answers the error as it always would. So the
// fast path never accepts what net/http rejects nor frames a body
// differently, which FuzzParseHead checks against net/http's own parser.
package h1

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves HTTP/1.1 on a listener with the settings and handler of an
// http.Server, which also serves the connections the fast path hands over.
type Server struct {
	// Direct, when set before Serve, is offered every body-less request on
	// the fast path before Handler (see Direct).
	Direct Direct

	// OnPanic, when set before Serve, is told of every panic recovered on
	// the fast path (http.ErrAbortHandler aside, which only cuts a
	// response off) with the client's address and the stack of the
	// goroutine that panicked; nil logs them to the http.Server's
	// ErrorLog, as net/http does.
	OnPanic func(remoteAddr string, v any, stack []byte)

	hs *http.Server

	// base is the context of every request: it carries
	// http.ServerContextKey, as net/http's does.
	base context.Context

	handoff *handoffListener

	// connContext is hs.ConnContext as given to New; New wraps it so that
	// net/http does not run it again for a connection the fast path hands
	// over.
	connContext func(context.Context, net.Conn) context.Context

	mu         sync.Mutex
	conns      map[*conn]struct{}
	listeners  map[net.Listener]struct{}
	inShutdown atomic.Bool
	// beginOnce runs begin once, whether Close or Shutdown comes first.
	beginOnce sync.Once
	// hsServe starts hs on the handoff listener with the first Serve.
	hsServe sync.Once

	watches watcher
	// watchRead, when set by a test before Serve, is told of each read of
	// a client-gone watch as it returns, with the bytes it read.
	watchRead func(n int)
}

// New returns a server for hs's Handler, ReadHeaderTimeout, IdleTimeout,
// MaxHeaderBytes, ConnContext and ErrorLog. It wraps hs.ConnContext so that
// a connection runs it once, whichever of the two serves it. hs must not be served elsewhere; TLS
// listeners are not for the fast path (serve them with hs directly).
func New(hs *http.Server) *Server {
	s := &Server{
		hs:        hs,
		conns:     make(map[*conn]struct{}),
		listeners: make(map[net.Listener]struct{}),
	}
	s.base = context.WithValue(context.Background(), http.ServerContextKey, hs)
	if cc := hs.ConnContext; cc != nil {
		// ConnContext runs once per connection: a connection the fast path
		// hands to net/http keeps the context it made for it there.
		s.connContext = cc
		hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(*prefixConn); ok && pc.ctx != nil {
				return pc.ctx
			}
			return cc(ctx, c)
		}
	}
	return s
}

// Serve accepts connections on ln until it is closed or the server shuts
// down. It returns http.ErrServerClosed after Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	if !fastPathSupported {
		return s.hs.Serve(ln)
	}
	s.mu.Lock()
	if s.inShutdown.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	if s.handoff == nil {
		s.handoff = newHandoffListener(ln.Addr())
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	s.hsServe.Do(func() {
		// It ends with ErrServerClosed or the handoff listener's
		// net.ErrClosed, both a normal stop.
		go s.hs.Serve(s.handoff)
	})
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var delay time.Duration
	for {
		rw, err := ln.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return http.ErrServerClosed
			}
			if temporary(err) {
				// Out of file descriptors and the like: back off as
				// net/http's Serve does, on the same errors, rather than
				// spin or stop serving. (The proxy's own listeners never
				// hand it an accept error: their guard retries them.)
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logf("h1: accept error: %v; retrying in %v", err, delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c, ok := s.newConn(rw)
		if !ok {
			rw.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

// temporary reports whether an accept error is worth another try, by the
// rule net/http's Serve applies: the error says it is temporary, as
// EMFILE, ENFILE, ECONNABORTED and timeouts do. The interface is spelled
// out because net.Error's Temporary method is deprecated for other uses.
func temporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// track adds or removes a connection from the set Shutdown waits for; it
// reports false when the server is already shutting down.
func (s *Server) track(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.inShutdown.Load() {
			return false
		}
		s.conns[c] = struct{}{}
		return true
	}
	delete(s.conns, c)
	return true
}

// shuttingDown reports whether keep-alive has ended: responses then carry
// Connection: close.
func (s *Server) shuttingDown() bool { return s.inShutdown.Load() }

// Shutdown stops accepting, closes idle connections, and waits for the
// requests under way to finish and for their connections to close, or
// for ctx to end. Connections handed to net/http shut down with it.
func (s *Server) Shutdown(ctx context.Context) error {
	s.begin()
	hsDone := make(chan error, 1)
	go func() { hsDone <- s.hs.Shutdown(ctx) }()

	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() {
			break
		}
		select {
		case <-ctx.Done():
			<-hsDone
			return ctx.Err()
		case <-tick.C:
		}
	}
	if done := s.watches.stop(); done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			<-hsDone
			return ctx.Err()
		}
	}
	return <-hsDone
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.begin()
	s.mu.Lock()
	for c := range s.conns {
		c.rwc.Close()
	}
	s.mu.Unlock()
	s.watches.stop()
	return s.hs.Close()
}

// begin stops accepting: every listener and the handoff listener close,
// and keep-alive ends.
func (s *Server) begin() {
	s.beginOnce.Do(func() {
		s.mu.Lock()
		s.inShutdown.Store(true)
		for ln := range s.listeners {
			ln.Close()
		}
		if s.handoff != nil {
			s.handoff.Close()
		}
		s.mu.Unlock()
	})
}

// closeIdle closes the connections waiting for a request, new ones only
// after newConnGrace, and reports whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := time.Now().Unix() - newConnGrace
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) ||
			c.accepted < old && c.state.CompareAndSwap(stateNew, stateClosed) {
			c.rwc.Close()
		}
	}
	return len(s.conns) == 0
}

func (s *Server) logf(format string, args ...any) {
	if s.hs.ErrorLog != nil {
		s.hs.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// handOver passes a connection to net/http with the bytes already read
// from it. It reports false when net/http no longer accepts connections.
func (s *Server) handOver(rw net.Conn, buffered []byte, ctx context.Context) bool {
	pc := &prefixConn{Conn: rw, ctx: ctx}
	if len(buffered) > 0 {
		pc.prefix = append([]byte(nil), buffered...)
	}
	return s.handoff.push(pc)
}
