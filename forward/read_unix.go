//go:build unix

package forward

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/tbsphathuynh/proxy/internal/sched"
)

// useRaw lets readBusy read pc's socket through its file descriptor, when
// it is a plain TCP or Unix socket: a connection a dialer wrapped keeps
// its own Read.
func (pc *pconn) useRaw() {
	var sc syscall.Conn
	switch c := pc.Conn.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	}
	if sc != nil {
		if raw, err := sc.SyscallConn(); err == nil {
			pc.raw = raw
			pc.readFn = pc.readSome
		}
	}
}

// readBusy reads as Conn.Read does, except that while the scheduler is
// busy a read that finds nothing yields and reads again instead of
// parking (package sched says why).
func (pc *pconn) readBusy(p []byte) (int, error) {
	if pc.raw == nil || len(p) == 0 {
		return pc.Conn.Read(p)
	}
	pc.p = p
	defer func() { pc.p = nil }()
	for {
		pc.again = false
		if err := pc.raw.Read(pc.readFn); err != nil {
			var op *net.OpError
			if errors.As(err, &op) {
				op.Op = "read" // as Conn.Read says, not "raw-read"
			}
			return 0, err
		}
		if !pc.again {
			n, err := pc.n, pc.rerr
			pc.rerr = nil
			return n, err
		}
		pc.spins++
		pc.busy = sched.Yield()
	}
}

// readSome is readBusy's part inside RawConn.Read, which parks until the
// socket is readable and calls it again whenever it returns false.
func (pc *pconn) readSome(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), pc.p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if pc.busy && pc.spins < sched.MaxSpins {
				pc.again = true
				return true
			}
			return false
		case err != nil:
			pc.n, pc.rerr = 0, &net.OpError{Op: "read", Net: "tcp", Source: pc.LocalAddr(), Addr: pc.RemoteAddr(), Err: os.NewSyscallError("read", err)}
		case n == 0:
			pc.n, pc.rerr = 0, io.EOF
		default:
			pc.n, pc.rerr = n, nil
		}
		return true
	}
}
