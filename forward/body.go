package forward

import (
	"io"
	"sync"

	"github.com/tbsphathuynh/proxy/upstream"
)

// trackedBody releases the server's in-flight slot when the response body
// is closed: the request is in flight until its last byte is relayed.
type trackedBody struct {
	io.ReadCloser
	once sync.Once
	s    *upstream.Server
}

func (b *trackedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.s.Release)
	return err
}

// trackedConn is trackedBody for a switched protocol (101): the body is the
// two-way connection, and httputil.ReverseProxy needs it to stay an
// io.ReadWriteCloser to relay the upgrade.
type trackedConn struct {
	io.ReadWriteCloser
	once sync.Once
	s    *upstream.Server
}

func (b *trackedConn) Close() error {
	err := b.ReadWriteCloser.Close()
	b.once.Do(b.s.Release)
	return err
}

func track(body io.ReadCloser, s *upstream.Server) io.ReadCloser {
	if rwc, ok := body.(io.ReadWriteCloser); ok {
		return &trackedConn{ReadWriteCloser: rwc, s: s}
	}
	return &trackedBody{ReadCloser: body, s: s}
}
