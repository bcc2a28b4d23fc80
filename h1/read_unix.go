//go:build unix

package h1

import (
	"io"
	"syscall"

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
