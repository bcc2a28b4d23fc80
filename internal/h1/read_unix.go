//go:build unix

package h1

import (
	"io"
	"syscall"
	"time"

	"github.com/tbsphathuynh/proxy/internal/sysio"
)

const fastPathSupported = true

// readSome reads what the socket has into the buffer, borrowing it for the
// read and giving it back when the socket had nothing and nothing else is
// buffered: an idle connection holds no buffer. It runs inside
// RawConn.Read, which waits for readability and calls it again when it
// returns false; when the connection's sched.Wait says to spin or to bound
// the park it returns true instead, with again (and bound) set, and fill
// does so.
func (c *conn) readSome(fd uintptr) bool {
	if c.buf == nil {
		c.buf = readBuffers.Get().(*[]byte)
		c.r, c.w = 0, 0
	}
	b := *c.buf
	for {
		n, err := sysio.Read(fd, b[c.w:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			c.wait.Missed()
			var spin, bound bool
			if !c.parking {
				spin, bound = c.wait.Empty(!c.waitDeadline.IsZero())
			}
			if spin {
				// Read again after a yield: keep the buffer meanwhile.
				c.again = true
				return true
			}
			c.releaseIfEmpty()
			if bound {
				// Park with a bound, which fill sets first.
				c.again, c.bound = true, true
				return true
			}
			return false
		case err != nil:
			c.rerr = err
		case n == 0:
			c.rerr = io.EOF
		default:
			c.wait.Got()
			c.w += n
		}
		return true
	}
}

// readLate reads, without waiting, what the socket holds once the wait for
// the next request has passed its deadline, and reports whether anything
// came. Past its deadline a read fails before it looks at the socket, and
// a goroutine that ran late (a loaded machine, a busy scheduler) would
// close a connection whose request had come in time: the client would
// see a reset and not know whether its request was served.
func (c *conn) readLate() bool {
	c.rwc.SetReadDeadline(time.Time{})
	c.waitDeadline = time.Time{}
	if c.buf == nil {
		c.buf = readBuffers.Get().(*[]byte)
		c.r, c.w = 0, 0
	}
	got := false
	c.raw.Read(func(fd uintptr) bool {
		for {
			n, err := sysio.Read(fd, (*c.buf)[c.w:])
			if err == syscall.EINTR {
				continue
			}
			if err == nil && n > 0 {
				c.w += n
				got = true
			}
			return true
		}
	})
	c.releaseIfEmpty()
	return got
}
