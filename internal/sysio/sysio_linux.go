//go:build linux && !race && !msan && !asan

// Package sysio reads and writes sockets in non-blocking mode without the
// runtime's system call bookkeeping.
//
// syscall.Read and syscall.Write tell the scheduler a system call may
// block (entersyscall, exitsyscall), so that another thread can take the
// processor meanwhile. On a non-blocking socket the call never blocks,
// and the bookkeeping is about a fifth of the cost of a read that finds
// nothing (about 100 ns on the benchmark machine), paid on every read and
// write of every proxied request. Elsewhere than Linux, where system calls
// go through the C library, the calls are syscall's own, and so they are
// under the race detector, which learns from syscall's that bytes written
// to a socket by one goroutine and read by another order the two, and
// under the memory and address sanitizers, which learn from them what
// the kernel read and wrote.
//
// A descriptor must stay non-blocking: one made blocking (os.File's Fd
// does that) would block the whole processor here, and with it the
// collector's stops.
package sysio

import (
	"syscall"
	"unsafe"
)

// Read reads from the non-blocking descriptor fd into p, as syscall.Read
// does, but with 0 bytes rather than -1 on an error. It must not be used
// on a descriptor that can block.
func Read(fd uintptr, p []byte) (int, error) { return call(syscall.SYS_READ, fd, p) }

// maxWrite bounds one Write: on loopback a write runs the receiving
// side's processing too, and the processor is held throughout, so a
// large one goes out in several calls (callers loop on short writes, as
// for any socket).
const maxWrite = 64 << 10

// Write writes p, or its first maxWrite bytes, to the non-blocking
// descriptor fd, as syscall.Write does, but with 0 bytes rather than -1
// on an error. It must not be used on a descriptor that can block.
func Write(fd uintptr, p []byte) (int, error) {
	if len(p) > maxWrite {
		p = p[:maxWrite]
	}
	return call(syscall.SYS_WRITE, fd, p)
}

// call makes the read or write system call trap on fd and p.
func call(trap, fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// Peek reads what the socket fd holds into p without consuming it, and
// without blocking, as recv(2) with MSG_PEEK|MSG_DONTWAIT: 0 bytes and no
// error means the peer closed the stream; EAGAIN, that nothing is there.
func Peek(fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
