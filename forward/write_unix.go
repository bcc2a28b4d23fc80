//go:build unix

package forward

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/tbsphathuynh/proxy/internal/sysio"
)

// Write writes p to the server as Conn.Write does, with the same errors,
// through the file descriptor when readBusy reads through it
// (sysio.Write saves the scheduler's system-call bookkeeping). Unlike
// Conn.Write it is not safe for concurrent use: out, wrote and werr are
// set outside the descriptor's write lock; only the exchange writes.
func (pc *pconn) Write(p []byte) (int, error) {
	if pc.raw == nil || len(p) == 0 {
		return pc.Conn.Write(p)
	}
	pc.out, pc.wrote, pc.werr = p, 0, nil
	err := pc.raw.Write(pc.writeFn)
	n := pc.wrote
	pc.out = nil
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			op.Op = "write" // as Conn.Write says, not "raw-write"
		}
		return n, err
	}
	if err = pc.werr; err != nil {
		pc.werr = nil
		if errno, ok := err.(syscall.Errno); ok {
			err = os.NewSyscallError("write", errno)
		}
		return n, &net.OpError{Op: "write", Net: pc.LocalAddr().Network(), Source: pc.LocalAddr(), Addr: pc.RemoteAddr(), Err: err}
	}
	return n, nil
}

// writeSome is Write's part inside RawConn.Write, which waits for the
// socket to take more and calls it again whenever it returns false.
func (pc *pconn) writeSome(fd uintptr) bool {
	for pc.wrote < len(pc.out) {
		n, err := sysio.Write(fd, pc.out[pc.wrote:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			pc.werr = err
			return true
		case n == 0:
			pc.werr = io.ErrUnexpectedEOF
			return true
		}
		pc.wrote += n
	}
	return true
}
