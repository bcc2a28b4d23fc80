//go:build unix

package h1

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/tbsphathuynh/proxy/internal/sysio"
)

// rawWriter carries a write through RawConn.Write: writeFn is
// c.writeSome as a value made once; out, wrote and werr are the write's.
type rawWriter struct {
	writeFn func(fd uintptr) bool
	out     []byte
	wrote   int
	werr    error
}

func (c *conn) initWriter() { c.writeFn = c.writeSome }

// write writes p to the client as rwc.Write does, with the same errors,
// through the file descriptor (sysio.Write saves the scheduler's
// system-call bookkeeping on each of a request's writes). Unlike
// rwc.Write it is not safe for concurrent use: out, wrote and werr are
// set outside the descriptor's write lock.
func (c *conn) write(p []byte) (int, error) {
	if len(p) == 0 {
		// As Conn.Write: an error on a closed connection or a passed
		// deadline, even for nothing.
		return c.rwc.Write(p)
	}
	c.out, c.wrote, c.werr = p, 0, nil
	err := c.raw.Write(c.writeFn)
	n := c.wrote
	c.out = nil
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			op.Op = "write" // as Conn.Write says, not "raw-write"
		}
		return n, err
	}
	if c.werr != nil {
		err = c.werr
		c.werr = nil
		if errno, ok := err.(syscall.Errno); ok {
			err = os.NewSyscallError("write", errno)
		}
		return n, &net.OpError{Op: "write", Net: c.rwc.LocalAddr().Network(), Source: c.rwc.LocalAddr(), Addr: c.rwc.RemoteAddr(), Err: err}
	}
	return n, nil
}

// writeSome is write's part inside RawConn.Write, which waits for the
// socket to take more and calls it again whenever it returns false.
func (c *conn) writeSome(fd uintptr) bool {
	for c.wrote < len(c.out) {
		n, err := sysio.Write(fd, c.out[c.wrote:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			c.werr = err
			return true
		case n == 0:
			c.werr = io.ErrUnexpectedEOF
			return true
		}
		c.wrote += n
	}
	return true
}
