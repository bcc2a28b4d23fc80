package localfault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// dialError is what net returns when a dial fails in the system call op.
func dialError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError(op, errno)}
}

func TestReason(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"socket: too many open files", dialError("socket", syscall.EMFILE), EMFILE},
		{"socket: file table overflow", dialError("socket", syscall.ENFILE), ENFILE},
		{"connect: no buffer space", dialError("connect", syscall.ENOBUFS), ENOBUFS},
		{"socket: out of memory", dialError("socket", syscall.ENOMEM), ENOMEM},
		{"connect: out of ephemeral ports", dialError("connect", syscall.EADDRNOTAVAIL), EADDRNOTAVAIL},
		{"accept: too many open files", &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}, EMFILE},
		{"wrapped by a transport", fmt.Errorf("proxy: %w", dialError("socket", syscall.EMFILE)), EMFILE},
		{"bare errno", syscall.EMFILE, EMFILE},
		// The server's doing, never local.
		{"connection refused", dialError("connect", syscall.ECONNREFUSED), ""},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, ""},
		{"host unreachable", dialError("connect", syscall.EHOSTUNREACH), ""},
		{"timeout", context.DeadlineExceeded, ""},
		{"plain error", errors.New("too many open files"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Reason(tc.err); got != tc.want {
				t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
			}
			if got := Is(tc.err); got != (tc.want != "") {
				t.Errorf("Is(%v) = %v, want %v", tc.err, got, tc.want != "")
			}
		})
	}
}

func TestWrap(t *testing.T) {
	err := dialError("socket", syscall.EMFILE)
	w := Wrap(err)
	var le *Error
	if !errors.As(w, &le) || le.Reason != EMFILE {
		t.Fatalf("Wrap(%v) = %#v, want an *Error with reason emfile", err, w)
	}
	if !errors.Is(w, ErrLocal) || !errors.Is(w, syscall.EMFILE) {
		t.Errorf("Wrap(%v) matches ErrLocal %v, EMFILE %v; want both", err, errors.Is(w, ErrLocal), errors.Is(w, syscall.EMFILE))
	}
	if again := Wrap(w); again != w {
		t.Errorf("Wrap of a wrapped error = %v, want it unchanged", again)
	}
	refused := dialError("connect", syscall.ECONNREFUSED)
	if got := Wrap(refused); got != refused {
		t.Errorf("Wrap(%v) = %v, want it unchanged", refused, got)
	}
	if Wrap(nil) != nil {
		t.Error("Wrap(nil) != nil")
	}
}

func TestEvery(t *testing.T) {
	var e Every
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at    time.Duration
		ok    bool
		count int
	}{
		{0, true, 1},
		{100 * time.Millisecond, false, 0},
		{900 * time.Millisecond, false, 0},
		{time.Second, true, 3}, // itself and the two held back
		{1500 * time.Millisecond, false, 0},
		{5 * time.Second, true, 2},
	}
	for _, s := range steps {
		ok, count := e.Allow(t0.Add(s.at))
		if ok != s.ok || count != s.count {
			t.Errorf("Allow at +%v = %v, %d; want %v, %d", s.at, ok, count, s.ok, s.count)
		}
	}
}

func TestReserve(t *testing.T) {
	r := NewReserve(3)
	if !r.Whole() || !r.Refill(0) {
		t.Fatal("a fresh reserve is not whole")
	}
	if n := r.Release(); n != 3 {
		t.Errorf("Release closed %d descriptors, want 3", n)
	}
	if n := r.Release(); n != 0 {
		t.Errorf("a second Release closed %d, want 0", n)
	}
	if r.Whole() {
		t.Error("a released reserve says it is whole")
	}
	if !r.Refill(5) || !r.Whole() {
		t.Error("Refill after Release is not whole")
	}
	if n := r.Release(); n != 3 {
		t.Errorf("after Refill with headroom the reserve held %d, want 3: the headroom is given back", n)
	}

	var none *Reserve
	if none.Release() != 0 || !none.Refill(1) || !none.Whole() || none.Size() != 0 {
		t.Error("a nil reserve must hold nothing and always be whole")
	}
}

func TestReserveSize(t *testing.T) {
	if n := ReserveSize(); n < 1 || n > maxReserve {
		t.Errorf("ReserveSize() = %d, want 1..%d", n, maxReserve)
	}
}
