//go:build unix

package forward

import (
	"net"
	"syscall"
)

// closedByPeer reports whether the server has closed or reset an idle
// connection, or sent bytes nobody asked for: a look at the socket that
// neither blocks nor consumes anything. Requests that may not be sent
// twice check this before they reuse a connection, since for them a
// failure on a connection the server had already closed cannot be
// retried.
func closedByPeer(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	dead := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// n > 0: unsolicited bytes; n == 0 with no error: end of stream;
		// any error but "would block": broken.
		dead = n > 0 || err == nil || err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
		return true
	})
	return dead || err != nil
}
