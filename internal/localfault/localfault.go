// Package localfault tells a failure of the proxy's own resources (out of
// file descriptors, kernel buffers, memory or ephemeral ports) from a
// failure of the server it was talking to. A server is never blamed for
// the first kind: a proxy that runs out of descriptors would otherwise
// fail every health check, mark every server down and turn a local
// shortage into an outage of everything (issue 18, item 5).
package localfault

import (
	"errors"
	"sync"
	"syscall"
	"time"
)

// The reasons Reason returns; they are also the values of the reason label
// of proxy_accept_errors_total.
const (
	EMFILE        = "emfile"        // the process's descriptor limit
	ENFILE        = "enfile"        // the system's descriptor limit
	ENOBUFS       = "enobufs"       // kernel socket buffers
	ENOMEM        = "enomem"        // kernel memory
	EADDRNOTAVAIL = "eaddrnotavail" // no ephemeral port left for a new connection
)

// Reason returns the name of the local resource err says ran out, or ""
// when err is something else (a server's refusal, reset or timeout, or
// nil). It looks through wrapped errors: net's *OpError and
// *os.SyscallError unwrap to the system's errno.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return ""
	}
	switch errno {
	case syscall.EMFILE:
		return EMFILE
	case syscall.ENFILE:
		return ENFILE
	case syscall.ENOBUFS:
		return ENOBUFS
	case syscall.ENOMEM:
		return ENOMEM
	case syscall.EADDRNOTAVAIL:
		// connect(2) says so when no ephemeral port is left for the
		// destination; the proxy never binds an outgoing socket to an
		// address of its own, the other cause.
		return EADDRNOTAVAIL
	}
	return ""
}

// Describe says in words what a reason means, for log lines.
func Describe(reason string) string {
	switch reason {
	case EMFILE:
		return "the proxy is out of file descriptors (RLIMIT_NOFILE)"
	case ENFILE:
		return "the system is out of file descriptors (fs.file-max)"
	case ENOBUFS:
		return "the system is out of socket buffers"
	case ENOMEM:
		return "the system is out of kernel memory"
	case EADDRNOTAVAIL:
		return "the proxy is out of ephemeral ports for new connections to servers"
	}
	return reason
}

// ErrLocal is matched by every *Error (errors.Is).
var ErrLocal = errors.New("the proxy's own resources ran out")

// Error is a failure of the proxy's own resources met while talking to a
// server: the server is not to blame.
type Error struct {
	Reason string // one of the constants above
	Err    error
}

func (e *Error) Error() string {
	return "local fault: " + Describe(e.Reason) + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrLocal) true.
func (e *Error) Is(target error) bool { return target == ErrLocal }

// Wrap returns err as an *Error when it is a local fault, else err as it
// is. An error already wrapped is returned unchanged.
func Wrap(err error) error {
	if err == nil || errors.Is(err, ErrLocal) {
		return err
	}
	if r := Reason(err); r != "" {
		return &Error{Reason: r, Err: err}
	}
	return err
}

// Is reports whether err is a local fault, wrapped or not.
func Is(err error) bool { return errors.Is(err, ErrLocal) || Reason(err) != "" }

// Every lets an event through at most once per period and counts the ones
// it held back, so a fault that repeats a thousand times a second makes
// one log line a second, which says how many it stands for. The zero value
// lets the first event through; a zero Period means a second.
type Every struct {
	Period time.Duration

	// mu guards last and held.
	mu   sync.Mutex
	last time.Time
	held int
}

// Allow reports whether the event at now may be logged and, when it may,
// how many events it stands for: itself and those held back since the
// last one allowed.
func (e *Every) Allow(now time.Time) (ok bool, count int) {
	period := e.Period
	if period <= 0 {
		period = time.Second
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.last.IsZero() && now.Sub(e.last) < period {
		e.held++
		return false, 0
	}
	count = e.held + 1
	e.last, e.held = now, 0
	return true, count
}
