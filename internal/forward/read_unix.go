//go:build unix

package forward

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/tbsphathuynh/proxy/internal/sched"
	"github.com/tbsphathuynh/proxy/internal/sysio"
)

// rawIO is what a read through RawConn.Read carries, and a write through
// RawConn.Write: bound says readSome wants a bounded park, parking that
// one is under way; raw, readFn and the rest carry the read itself.
type rawIO struct {
	bound, parking bool
	raw            syscall.RawConn
	readFn         func(fd uintptr) bool
	p              []byte
	n              int
	rerr           error
	again          bool

	// w writes through the descriptor too.
	w sysio.Writer

	// probe's look at an idle connection (probe_unix.go): its func
	// value, its buffer, and what it found.
	probeFn func(fd uintptr)
	peekBuf []byte
	probed  probeState
	peeked  int
}

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
			pc.w.Init(pc.Conn, raw)
		}
	}
}

// readBusy reads as Conn.Read does, except that while the scheduler is
// busy a read that finds nothing yields and reads again instead of
// parking, and a read of an answer's head that parks anyway does so for
// sched.ParkSlice at a time, twice (package sched says why); for a server
// that takes its time to answer it does neither (sched.Peer).
func (pc *pconn) readBusy(p []byte) (int, error) {
	if pc.raw == nil || len(p) == 0 {
		return pc.Conn.Read(p)
	}
	pc.p = p
	defer func() { pc.p = nil }()
	for {
		pc.again, pc.bound = false, false
		err := pc.raw.Read(pc.readFn)
		if pc.parking {
			pc.parking = false
			if until, ok := pc.endBoundedPark(); ok && errors.Is(err, os.ErrDeadlineExceeded) && time.Now().UnixNano() < until {
				// The park's own bound: read again, the bytes may have
				// come while nothing polled.
				pc.wait.Yield()
				continue
			}
		}
		if err != nil {
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
		if pc.bound {
			pc.wait.Bound()
			pc.parking = pc.startBoundedPark()
			continue
		}
		pc.wait.Spin()
	}
}

// startBoundedPark moves the read deadline to at most sched.ParkSlice
// ahead, unless kill has run (its deadline must stay) or the header
// deadline is unknown. It reports whether it did.
func (pc *pconn) startBoundedPark() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	until := pc.headerUntil.Load()
	if pc.killed || until == 0 {
		return false
	}
	pc.Conn.SetReadDeadline(time.Unix(0, min(until, time.Now().Add(sched.ParkSlice).UnixNano())))
	return true
}

// endBoundedPark puts the header deadline back, unless kill has run
// meanwhile, and returns it; ok is false when kill has run.
func (pc *pconn) endBoundedPark() (until int64, ok bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	until = pc.headerUntil.Load()
	if pc.killed || until == 0 {
		return 0, false
	}
	pc.Conn.SetReadDeadline(time.Unix(0, until))
	return until, true
}

// readSome is readBusy's part inside RawConn.Read, which parks until the
// socket is readable and calls it again whenever it returns false.
func (pc *pconn) readSome(fd uintptr) bool {
	for {
		n, err := sysio.Read(fd, pc.p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if pc.awaiting {
				pc.wait.Missed()
			}
			if pc.parking {
				return false
			}
			spin, bound := pc.wait.Empty(pc.headerUntil.Load() != 0)
			// A bounded park is set by readBusy first.
			pc.again, pc.bound = spin || bound, bound
			return pc.again
		case err != nil:
			pc.n, pc.rerr = 0, &net.OpError{Op: "read", Net: pc.LocalAddr().Network(), Source: pc.LocalAddr(), Addr: pc.RemoteAddr(), Err: os.NewSyscallError("read", err)}
		case n == 0:
			pc.n, pc.rerr = 0, io.EOF
		default:
			pc.n, pc.rerr = n, nil
			if pc.awaiting {
				pc.awaiting = false
				pc.wait.Got()
			}
		}
		return true
	}
}
