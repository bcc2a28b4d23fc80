package server

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/tbsphathuynh/proxy/internal/localfault"
)

// scriptedListener fails its accepts with the errors in script, one each,
// then accepts as usual.
type scriptedListener struct {
	net.Listener
	mu     sync.Mutex
	script []error
}

func (l *scriptedListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.script) > 0 {
		err := l.script[0]
		l.script = l.script[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

// TestAcceptGuard: accept errors of every kind, ENOBUFS included (which
// net/http's server gives up on, and so did the main listener's loop), are
// counted by reason, logged once a second with how many there were, and
// retried with a backoff until a client gets through; running out of
// descriptors gives the reserve back.
func TestAcceptGuard(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ln := &scriptedListener{Listener: raw, script: []error{
		acceptErr(syscall.EMFILE), acceptErr(syscall.EMFILE), acceptErr(syscall.ENFILE),
		acceptErr(syscall.ENOBUFS), acceptErr(syscall.ENOMEM), acceptErr(syscall.EPROTO),
	}}
	var mu sync.Mutex
	counts := map[string]int{}
	var logs bytes.Buffer
	reserve := localfault.NewReserve(2)
	defer reserve.Release()
	g := &acceptGuard{
		name: "listen", log: slog.New(slog.NewTextHandler(&logs, nil)), reserve: reserve,
		count: func(reason string) { mu.Lock(); counts[reason]++; mu.Unlock() },
	}
	quit := make(chan struct{})
	g.quit = quit

	client, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := g.accept(ln)
	if err != nil {
		t.Fatalf("accept after transient errors: %v", err)
	}
	c.Close()

	want := map[string]int{"emfile": 2, "enfile": 1, "enobufs": 1, "enomem": 1, "other": 1}
	mu.Lock()
	for r, n := range want {
		if counts[r] != n {
			t.Errorf("counted %d %s errors, want %d (all: %v)", counts[r], r, n, counts)
		}
	}
	mu.Unlock()
	if reserve.Whole() {
		t.Error("the reserve was not given back when descriptors ran out")
	}
	out := logs.String()
	// Six errors in well under a second: the first is logged, the rest
	// wait for the next line.
	if n := strings.Count(out, "accept failed"); n < 1 || n > 2 {
		t.Errorf("%d log lines for 6 accept errors, want 1 (2 if a second passed):\n%s", n, out)
	}
	if !strings.Contains(out, "reason=emfile") || !strings.Contains(out, "listener=listen") {
		t.Errorf("the log line does not name the listener and reason:\n%s", out)
	}

	// Closing ends a backoff under way.
	ln.script = []error{acceptErr(syscall.EMFILE)}
	g.delay = acceptMaxDelay
	close(quit)
	if _, err := g.accept(ln); !errors.Is(err, net.ErrClosed) {
		t.Errorf("accept after quit = %v, want net.ErrClosed", err)
	}
}

// TestHandoffSurvivesAcceptErrors: the main listener's accept loop keeps
// going after an error it used to die on (ENOBUFS ended it, and the
// address refused every client from then on).
func TestHandoffSurvivesAcceptErrors(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &scriptedListener{Listener: raw, script: []error{acceptErr(syscall.ENOBUFS), acceptErr(syscall.ENFILE)}}
	h := newHandoff(ln, &acceptGuard{name: "listen"})
	defer h.Close()
	v := h.view()
	defer v.Close()
	client, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := v.Accept()
	if err != nil {
		t.Fatalf("the view's Accept = %v after transient errors, want the client", err)
	}
	c.Close()
}
