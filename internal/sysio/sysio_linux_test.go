//go:build linux && !race && !msan && !asan

package sysio

import (
	"syscall"
	"testing"
)

// One Write holds the processor for at most maxWrite bytes, however much
// the socket would take.
func TestWriteIsBounded(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	if err := syscall.SetsockoptInt(fds[0], syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	n, err := Write(uintptr(fds[0]), make([]byte, 1<<20))
	if err != nil || n <= 0 || n > maxWrite {
		t.Fatalf("wrote %d, %v; want between 1 and %d bytes", n, err, maxWrite)
	}
	if n != maxWrite {
		t.Logf("the socket took %d bytes, under maxWrite", n)
	}
}
