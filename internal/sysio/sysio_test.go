//go:build unix

package sysio

import (
	"syscall"
	"testing"
)

// Read answers as syscall.Read does: the bytes there are, EAGAIN when
// there are none yet, and 0 with no error once the peer has closed.
func TestReadAsSyscallRead(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	fd := uintptr(fds[0])
	p := make([]byte, 16)
	if n, err := Read(fd, p); n != 0 || err != syscall.EAGAIN {
		t.Fatalf("empty socket: %d, %v; want 0, EAGAIN", n, err)
	}
	if _, err := syscall.Write(fds[1], []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if n, err := Read(fd, p); n != 5 || err != nil || string(p[:n]) != "hello" {
		t.Fatalf("read %d, %v (%q); want 5 bytes \"hello\"", n, err, p[:n])
	}
	if n, err := Read(fd, nil); n != 0 || err != nil {
		t.Fatalf("empty buffer: %d, %v", n, err)
	}
	syscall.Close(fds[1])
	if n, err := Read(fd, p); n != 0 || err != nil {
		t.Fatalf("after the peer closed: %d, %v; want 0, nil", n, err)
	}
	if n, err := Read(^uintptr(0)>>1, p); n != 0 || err != syscall.EBADF {
		t.Fatalf("bad descriptor: %d, %v; want 0, EBADF", n, err)
	}
}
