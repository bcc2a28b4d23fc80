//go:build unix

package forward

import (
	"net"
	"syscall"

	"github.com/tbsphathuynh/proxy/internal/sysio"
)

// probeSupported says this platform can look at an idle socket without
// reading it, which reusing a pooled connection of the client requires.
const probeSupported = true

// probe looks at pc's socket before the connection is reused, neither
// blocking nor consuming anything: reusable is what a connection fit for
// the next request reports; closed, that the server closed or reset it
// meanwhile, which servers do at their keep-alive timeout; unsolicited,
// that bytes came when no request was waiting, and then sample holds
// their start. It goes through RawConn.Control, which unlike Read ignores
// the read deadline an earlier exchange may have left behind, so the look
// costs one system call and no timer, and it allocates nothing.
func (pc *pconn) probe(sample []byte) (state probeState, n int) {
	raw := pc.raw
	if raw == nil {
		sc, ok := pc.Conn.(syscall.Conn)
		if !ok {
			return probeClosed, 0
		}
		var err error
		if raw, err = sc.SyscallConn(); err != nil {
			return probeClosed, 0
		}
	}
	if pc.probeFn == nil {
		pc.probeFn = pc.peek
	}
	pc.peekBuf = sample
	err := raw.Control(pc.probeFn)
	pc.peekBuf = nil
	if err != nil {
		return probeClosed, 0
	}
	return pc.probed, pc.peeked
}

// peek is probe's look at the descriptor, a method so that the func value
// RawConn.Control takes is made once per connection.
func (pc *pconn) peek(fd uintptr) {
	n, err := sysio.Peek(fd, pc.peekBuf)
	pc.peeked = 0
	switch {
	case n > 0:
		pc.probed, pc.peeked = probeUnsolicited, n
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
		pc.probed = probeReusable
	default:
		// The end of the stream, or a broken connection.
		pc.probed = probeClosed
	}
}

// probeConn reports whether the probe can work on c; the client pools no
// connection it could not look at.
func probeConn(c net.Conn) bool {
	_, ok := c.(syscall.Conn)
	return ok
}
