//go:build unix && (!linux || race || msan || asan)

package sysio

import "syscall"

// Read reads from the non-blocking descriptor fd into p, as syscall.Read
// does, but with 0 bytes rather than -1 on an error.
func Read(fd uintptr, p []byte) (int, error) {
	n, err := syscall.Read(int(fd), p)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Write writes p to the non-blocking descriptor fd, as syscall.Write
// does, but with 0 bytes rather than -1 on an error.
func Write(fd uintptr, p []byte) (int, error) {
	n, err := syscall.Write(int(fd), p)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Peek reads what the socket fd holds into p without consuming it, and
// without blocking, as recv(2) with MSG_PEEK|MSG_DONTWAIT: 0 bytes and no
// error means the peer closed the stream; EAGAIN, that nothing is there.
func Peek(fd uintptr, p []byte) (int, error) {
	n, _, err := syscall.Recvfrom(int(fd), p, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	if err != nil {
		return 0, err
	}
	return n, nil
}
