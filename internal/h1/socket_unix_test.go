//go:build unix

package h1

import "syscall"

// socketHolds reports whether c's socket holds bytes not read yet.
func socketHolds(c *conn) bool {
	n := 0
	c.raw.Control(func(fd uintptr) {
		var b [1]byte
		n, _, _ = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	})
	return n > 0
}
