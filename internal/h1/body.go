package h1

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// maxDiscard is how much of a body the handler left unread is read and
// dropped to keep the connection, as net/http's maxPostHandlerReadBytes.
const maxDiscard = 256 << 10

// body is a request body of known length, read from the connection's
// buffer first and then from the connection.
type body struct {
	// mu is held by every read, so the end of the request can wait for a
	// read under way in another goroutine (a transport sending the body).
	mu        sync.Mutex
	c         *conn
	remaining int64
	// closing: the client asked for the connection to close, so a body
	// closed unread is left unread.
	closing bool
	closed  bool
	// earlyClose: the body was closed with more left than maxDiscard;
	// the connection closes, lingering (see conn.closeWriteAndWait).
	earlyClose bool
	err        error
}

func (b *body) reset(c *conn, n int64, closing bool) {
	b.c, b.remaining, b.closing = c, n, closing
	b.closed, b.earlyClose, b.err = false, false, nil
}

// Read implements io.Reader.
func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.read(p)
}

func (b *body) read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.remaining == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	c := b.c
	var n int
	var err error
	if c.buf != nil && c.w > c.r {
		n = copy(p, (*c.buf)[c.r:c.w])
		c.r += n
	} else {
		n, err = c.rwc.Read(p)
	}
	b.remaining -= int64(n)
	if err == io.EOF && b.remaining > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// sawEOF reports whether the whole body has been read; b.mu is held.
func (b *body) sawEOF() bool { return b.remaining == 0 && b.err == nil }

// Close implements io.Closer as net/http's request body does: unless the
// client asked to close the connection, a rest of up to maxDiscard is read
// and dropped so that the connection can carry another request; a longer
// rest is left, and the connection will close.
func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.close()
}

// close is Close with b.mu held.
func (b *body) close() error {
	if b.closed {
		return nil
	}
	var err error
	switch {
	case b.sawEOF(), b.closing:
	case b.remaining > maxDiscard:
		b.earlyClose = true
	default:
		// net/http reads at most maxDiscard bytes here, and gives up on
		// the connection when it read that many even if that was all.
		n := b.remaining
		err = b.drain()
		if n == maxDiscard {
			b.earlyClose = true
		}
	}
	b.closed = true
	return err
}

// settle deals with what the handler left unread when the response is
// about to go out, as net/http does: a short rest is read and dropped so
// the connection can carry another request; a long one (maxDiscard) stays
// readable, for a handler streaming both ways, and the connection closes
// after the response (tooBig). A body the handler closed before its end
// closes the connection. It waits for a read under way elsewhere.
func (b *body) settle() (closeConn, tooBig bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return !b.sawEOF(), false
	case b.remaining >= maxDiscard:
		return false, true
	}
	if b.drain() != nil {
		return true, false
	}
	b.closed = true
	return false, false
}

// end closes the body once the handler has returned, as net/http closes
// it: closeConn when bytes of it are left unread, early when more were
// left than maxDiscard (the connection then lingers as it closes). A read
// still under way in another goroutine is interrupted, and the connection
// cannot be reused.
func (b *body) end() (closeConn, early bool) {
	if !b.mu.TryLock() {
		b.c.rwc.SetReadDeadline(aLongTimeAgo)
		b.c.waitDeadline = time.Time{}
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		return true, false
	}
	defer b.mu.Unlock()
	b.close()
	return !b.sawEOF(), b.earlyClose
}

// drain reads and drops the rest of the body; b.mu is held.
func (b *body) drain() error {
	if b.remaining == 0 {
		return b.err
	}
	bp := readBuffers.Get().(*[]byte)
	defer readBuffers.Put(bp)
	for b.remaining > 0 {
		if _, err := b.read(*bp); err != nil {
			return err
		}
	}
	return nil
}
