package server

import (
	"net"
	"sync"
)

// handoff owns a listening socket and hands its connections to whichever
// http.Server currently serves it. A reload that changes how the main
// listener serves (timeouts, TLS, h2c) but not its address starts a new
// http.Server on a new view of the same socket and closes the old view:
// the socket itself never closes, so no connection waiting in its accept
// queue is reset, as closing and reopening it would do.
type handoff struct {
	raw   net.Listener
	conns chan net.Conn
	quit  chan struct{} // closed by Close
	once  sync.Once
	// done is closed when the accept loop ends; err says why.
	done chan struct{}
	err  error
	// guard accepts for loop, which alone uses it.
	guard *acceptGuard
}

func newHandoff(raw net.Listener, g *acceptGuard) *handoff {
	h := &handoff{raw: raw, conns: make(chan net.Conn), quit: make(chan struct{}), done: make(chan struct{}), guard: g}
	g.quit = h.quit
	go h.loop()
	return h
}

// loop accepts until the socket is closed. It ends when Close closes the
// socket; a connection accepted while no view wants it waits for one.
// Accept errors never end it: the guard counts, logs and retries them.
func (h *handoff) loop() {
	defer close(h.done)
	for {
		c, err := h.guard.accept(h.raw)
		if err != nil {
			h.err = err
			return
		}
		select {
		case h.conns <- c:
		case <-h.quit:
			c.Close()
			h.err = net.ErrClosed
			return
		}
	}
}

// Close closes the socket and ends the accept loop: from then on the
// address refuses connections.
func (h *handoff) Close() error {
	var err error
	h.once.Do(func() {
		close(h.quit)
		err = h.raw.Close()
	})
	<-h.done
	return err
}

// view returns a net.Listener that takes connections from the socket until
// the view is closed. Closing a view leaves the socket open.
func (h *handoff) view() net.Listener {
	return &view{h: h, closed: make(chan struct{})}
}

type view struct {
	h      *handoff
	once   sync.Once
	closed chan struct{}
}

func (v *view) Accept() (net.Conn, error) {
	select {
	case <-v.closed:
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-v.h.conns:
		return c, nil
	case <-v.closed:
		return nil, net.ErrClosed
	case <-v.h.done:
		return nil, v.h.err
	}
}

func (v *view) Close() error {
	v.once.Do(func() { close(v.closed) })
	return nil
}

func (v *view) Addr() net.Addr { return v.h.raw.Addr() }
