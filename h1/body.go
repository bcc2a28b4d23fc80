package h1

import (
	"io"
	"net/http"
	"sync"
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
	closed    bool
	err       error
}

func (b *body) reset(c *conn, n int64) {
	b.c, b.remaining, b.closed, b.err = c, n, false, nil
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

// Close implements io.Closer. The rest of the body is dealt with when the
// response goes out.
func (b *body) Close() error { return nil }

// settle deals with what the handler left unread when the response is
// about to go out, as net/http does: a short rest is read and dropped so
// the connection can carry another request; a long one (maxDiscard) stays
// readable, for a handler streaming both ways, and the connection closes
// after the response (tooBig). It waits for a read under way elsewhere.
func (b *body) settle() (closeConn, tooBig bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.err != nil {
		return b.remaining > 0 || b.err != nil, false
	}
	if b.remaining >= maxDiscard {
		return true, true
	}
	return b.drain(), false
}

// end closes the body once the handler has returned, dropping a short rest
// when drain is set. A read still under way in another goroutine is
// interrupted, and the connection cannot be reused.
func (b *body) end(drain bool) (closeConn bool) {
	if !b.mu.TryLock() {
		b.c.rwc.SetReadDeadline(aLongTimeAgo)
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		return true
	}
	defer b.mu.Unlock()
	if b.closed {
		return b.remaining > 0 || b.err != nil
	}
	if b.err != nil || b.remaining >= maxDiscard || !drain && b.remaining > 0 {
		b.closed = true
		return true
	}
	return b.drain()
}

// drain reads and drops the rest of the body; b.mu is held.
func (b *body) drain() (closeConn bool) {
	b.closed = true
	if b.remaining == 0 {
		return false
	}
	bp := readBuffers.Get().(*[]byte)
	defer readBuffers.Put(bp)
	for b.remaining > 0 {
		if _, err := b.read(*bp); err != nil {
			return true
		}
	}
	return false
}
