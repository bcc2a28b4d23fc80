package forward

import (
	"context"
	"io"
	"sync"

	"github.com/tbsphathuynh/proxy/upstream"
)

// trackedBody releases the server's in-flight slot when the response body
// is closed: the request is in flight until its last byte is relayed.
type trackedBody struct {
	io.ReadCloser
	once   sync.Once
	s      *upstream.Server
	cancel context.CancelFunc // ends a per-try context, or nil
}

func (b *trackedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

func (b *trackedBody) done() {
	b.s.Release()
	if b.cancel != nil {
		b.cancel()
	}
}

// trackedConn is trackedBody for a switched protocol (101): the body is the
// two-way connection, and httputil.ReverseProxy needs it to stay an
// io.ReadWriteCloser to relay the upgrade.
type trackedConn struct {
	io.ReadWriteCloser
	t trackedBody
}

func (b *trackedConn) Close() error {
	err := b.ReadWriteCloser.Close()
	b.t.once.Do(b.t.done)
	return err
}

func track(body io.ReadCloser, s *upstream.Server, cancel context.CancelFunc) io.ReadCloser {
	if rwc, ok := body.(io.ReadWriteCloser); ok {
		return &trackedConn{ReadWriteCloser: rwc, t: trackedBody{s: s, cancel: cancel}}
	}
	return &trackedBody{ReadCloser: body, s: s, cancel: cancel}
}
