//go:build unix

package redistest

import (
	"fmt"
	"syscall"
)

// holdPort binds a loopback TCP port the kernel picks and keeps it bound,
// without listening, until release. While it is held:
//
//   - connections to it are refused, as to any closed port, so a stopped
//     server still looks stopped;
//   - no other bind to port 0 and no outgoing connection's local port can
//     be given it (the kernel skips bound ports for both), which is how a
//     probed-then-closed port used to be lost to another test's server or
//     client while ours was starting or stopped;
//   - redis-server can still bind and listen on it, because both sockets
//     set SO_REUSEADDR and this one never listens.
func holdPort() (port int, release func(), err error) {
	// Close-on-exec, set under ForkLock as package net does where
	// SOCK_CLOEXEC is missing: a redis-server started meanwhile must not
	// inherit the hold and keep the port after release.
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return 0, nil, fmt.Errorf("hold a port: socket: %w", err)
	}
	fail := func(what string, err error) (int, func(), error) {
		syscall.Close(fd)
		return 0, nil, fmt.Errorf("hold a port: %s: %w", what, err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fail("bind", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		return fail("getsockname", fmt.Errorf("unexpected address %T", sa))
	}
	return in4.Port, func() { syscall.Close(fd) }, nil
}
