//go:build unix

package sysio

import (
	"syscall"
	"testing"
)

// nonblockingPair is a connected pair of Unix sockets, the first
// non-blocking and closed when the test ends; the test closes the second.
func nonblockingPair(t *testing.T) [2]int {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fds[0]) })
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	return fds
}

// Read answers as syscall.Read does: the bytes there are, EAGAIN when
// there are none yet, and 0 with no error once the peer has closed.
func TestReadAsSyscallRead(t *testing.T) {
	fds := nonblockingPair(t)
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

// Write answers as syscall.Write does: what fits in the socket's buffer,
// EAGAIN once it is full, EPIPE once the peer has closed.
func TestWriteAsSyscallWrite(t *testing.T) {
	fds := nonblockingPair(t)
	fd := uintptr(fds[0])
	if n, err := Write(fd, []byte("hello")); n != 5 || err != nil {
		t.Fatalf("wrote %d, %v; want 5 bytes", n, err)
	}
	p := make([]byte, 16)
	if n, err := syscall.Read(fds[1], p); n != 5 || err != nil || string(p[:n]) != "hello" {
		t.Fatalf("peer read %d, %v (%q); want \"hello\"", n, err, p[:n])
	}
	if n, err := Write(fd, nil); n != 0 || err != nil {
		t.Fatalf("empty buffer: %d, %v", n, err)
	}
	big := make([]byte, 1<<20)
	total := 0
	for {
		n, err := Write(fd, big)
		if err == syscall.EAGAIN {
			if n != 0 {
				t.Fatalf("EAGAIN with %d bytes", n)
			}
			break
		}
		if err != nil || n <= 0 {
			t.Fatalf("filling the buffer: %d, %v", n, err)
		}
		total += n
	}
	if total == 0 {
		t.Fatal("nothing fit in an empty socket's buffer")
	}
	syscall.Close(fds[1])
	if n, err := Write(fd, []byte("x")); n != 0 || err != syscall.EPIPE {
		t.Fatalf("after the peer closed: %d, %v; want 0, EPIPE", n, err)
	}
}
