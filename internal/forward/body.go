package forward

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/tbsphathuynh/proxy/upstream"
)

// trackedBody releases the server's in-flight slot when the response body
// is closed: the request is in flight until its last byte is relayed.
type trackedBody struct {
	io.ReadCloser
	released atomic.Bool
	s        *upstream.Server
	cancel   context.CancelFunc // ends a per-try context, or nil
}

func (b *trackedBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}

// release gives the slot back, once however often the body is closed.
func (b *trackedBody) release() {
	if !b.released.CompareAndSwap(false, true) {
		return
	}
	b.s.Release()
	if b.cancel != nil {
		b.cancel()
	}
}

// trackedConn is trackedBody for a switched protocol (101): the body is the
// two-way connection, and it must stay an io.ReadWriteCloser to relay the
// upgrade.
type trackedConn struct {
	io.ReadWriteCloser
	t trackedBody
}

func (b *trackedConn) Close() error {
	err := b.ReadWriteCloser.Close()
	b.t.release()
	return err
}

// track wraps a response body so closing it releases s. slot, when not
// nil, is used instead of a new allocation; each attempt of a request
// reuses it, so the body of a failed attempt is closed before the next
// attempt is made.
func track(body io.ReadCloser, s *upstream.Server, cancel context.CancelFunc, slot *trackedBody) io.ReadCloser {
	if rwc, ok := body.(io.ReadWriteCloser); ok {
		return &trackedConn{ReadWriteCloser: rwc, t: trackedBody{s: s, cancel: cancel}}
	}
	if slot == nil {
		slot = new(trackedBody)
	}
	slot.ReadCloser, slot.s, slot.cancel = body, s, cancel
	slot.released.Store(false)
	return slot
}
