// Package redistest runs a real redis-server for tests: a throwaway process
// on a free loopback port, with persistence off, that a test can kill and
// bring back on the same port to exercise outages.
//
// redis-server must be installed; `make test` installs it. A test that
// needs it fails, loudly, rather than skipping when it is missing: a skipped
// store test looks exactly like a passing one.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to answer its first PING.
const startTimeout = 10 * time.Second

// Server is one redis-server process. Its methods are safe for concurrent
// use.
type Server struct {
	// Addr is "127.0.0.1:PORT"; it stays the same across Stop and Start.
	Addr string

	t   testing.TB
	bin string
	dir string

	mu   sync.Mutex // guards cmd and done
	cmd  *exec.Cmd  // nil while stopped
	done chan error // receives the process's exit status once
}

// Start starts a redis-server for t and returns its address and a function
// that stops it. It is stopped on t's cleanup in any case.
func Start(t testing.TB) (addr string, stop func()) {
	t.Helper()
	s := NewServer(t)
	return s.Addr, s.Stop
}

// NewServer starts a redis-server for t on a free loopback port, waits until
// it answers PING, and stops it on t's cleanup. It calls t.Fatal if
// redis-server is not installed or does not come up.
func NewServer(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not installed: run make test, which installs it (%v)", err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	t.Cleanup(s.Stop)
	// Another process may take the free port between our probe and
	// redis-server binding it; a fresh port then usually works.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err = s.start()
		if err == nil {
			return s
		}
		if attempt == 3 {
			t.Fatalf("redistest: %v", err)
		}
	}
}

// Start brings a stopped server back on the same address; it does nothing
// if the server is running. It calls t.Fatal if the server does not come up.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
}

// Stop kills the server with SIGKILL, as a crash would, and waits for the
// process to exit. Data is lost: persistence is off. It does nothing if the
// server is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	_, port, _ := net.SplitHostPort(s.Addr)
	cmd := exec.Command(s.bin,
		"--port", port,
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
	)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan error, 1)
	// Owned by the Server: it ends when the process exits, which Stop (and
	// so t's cleanup) forces.
	go func() { done <- cmd.Wait() }()

	if err := waitReady(s.Addr, done); err != nil {
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("redis-server on %s: %w; its output:\n%s", s.Addr, err, out.String())
	}
	s.cmd, s.done = cmd, done
	return nil
}

// waitReady polls addr with PING until it answers PONG, the process exits,
// or startTimeout passes.
func waitReady(addr string, exited <-chan error) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited before answering: %v", err)
		default:
		}
		if last = ping(addr); last == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("no PONG within %v: %w", startTimeout, last)
}

// ping sends one inline PING command.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return errors.New("unexpected reply " + strconv.Quote(line))
	}
	return nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lockedBuffer collects the process's output, written by exec's copying
// goroutines and read by start.
type lockedBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
