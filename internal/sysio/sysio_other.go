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
