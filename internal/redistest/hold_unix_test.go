//go:build unix

package redistest

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// While a server is stopped its port stays bound, so that no other
// process's free-port probe or outgoing connection can be given it and
// Start can bring the server back there; connections are still refused.
func TestPortHeldWhileStopped(t *testing.T) {
	s := NewServer(t)
	s.Stop()
	if _, err := net.Dial("tcp", s.Addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a stopped server: %v, want connection refused", err)
	}
	// A plain bind, as the kernel's choice of a free port is, conflicts.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	a, err := net.ResolveTCPAddr("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	err = syscall.Bind(fd, &syscall.SockaddrInet4{Port: a.Port, Addr: [4]byte{127, 0, 0, 1}})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("bind %s while the server is stopped: %v, want EADDRINUSE", s.Addr, err)
	}
	s.Start()
	if _, err := ping(s.Addr); err != nil {
		t.Fatalf("restarted server: %v", err)
	}
}
