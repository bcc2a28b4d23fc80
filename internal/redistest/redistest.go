// Package redistest runs a real redis-server for tests: a throwaway process
// on a free loopback port, with persistence off, that a test can kill and
// bring back on the same port to exercise outages.
//
// The port stays reserved for the test from start to cleanup, even while
// the server is stopped, and a server counts as up only when the process we
// started answers: on a machine where other tests start Redis servers on
// free ports in parallel, a port probed and let go could otherwise be taken
// by one of them, and our test would talk to (and lose) someone else's
// server.
//
// redis-server must be installed; `make test` installs it. A test that
// needs it fails, loudly, rather than skipping when it is missing: a skipped
// store test looks exactly like a passing one.
package redistest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

	t    testing.TB
	bin  string
	dir  string
	opts Options

	busPort int // the cluster bus, with Options.ClusterBus

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

// Options change how NewServerWith runs redis-server.
type Options struct {
	// Args are more redis-server settings, as on its command line
	// ("--cluster-enabled", "yes"); for a Sentinel, whole lines of its
	// config file.
	Args []string
	// TLS, if set, serves TLS only: the port is Redis' tls-port and the
	// plain port is off. Clients need not present a certificate.
	TLS *TLS
	// Sentinel runs a Sentinel instead of a server.
	Sentinel bool
	// ClusterBus, if set, is given a second free port, the cluster bus
	// (Redis would otherwise use port+10000, which may not exist).
	ClusterBus bool
}

// TLS names the server's certificate, key and CA files.
type TLS struct {
	CertFile, KeyFile, CAFile string
}

// NewServer starts a redis-server for t on a free loopback port, waits until
// it answers PING, and stops it on t's cleanup. It calls t.Fatal if
// redis-server is not installed or does not come up.
func NewServer(t testing.TB) *Server {
	t.Helper()
	return NewServerWith(t, Options{})
}

// NewServerWith is NewServer with options.
func NewServerWith(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not installed: run make test, which installs it (%v)", err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), opts: opts}
	// A port held by holdPort can still be taken by a process told to bind
	// it explicitly (one that probed it before we held it); start then
	// fails, and a fresh port works.
	for attempt := 1; ; attempt++ {
		port, release, err := holdPort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if opts.ClusterBus {
			if s.busPort, err = freePort(); err != nil {
				t.Fatalf("redistest: %v", err)
			}
		}
		err = s.start()
		if err == nil {
			// Cleanups run last-registered first: the process is killed
			// before its port is let go.
			t.Cleanup(release)
			t.Cleanup(s.Stop)
			return s
		}
		release()
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
	cmd, err := s.command()
	if err != nil {
		return err
	}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan error, 1)
	// Owned by the Server: it ends when the process exits, which Stop (and
	// so t's cleanup) forces.
	go func() { done <- cmd.Wait() }()

	if err := waitReady(s.Addr, s.opts.TLS != nil, cmd.Process.Pid, done); err != nil {
		if !errors.Is(err, errExited) { // else waitReady has had its status
			_ = cmd.Process.Kill()
			<-done
		}
		return fmt.Errorf("redis-server on %s: %w; its output:\n%s", s.Addr, err, out.String())
	}
	s.cmd, s.done = cmd, done
	return nil
}

var (
	// errExited says the process exited before it was ready; waitReady
	// has received its exit status.
	errExited = errors.New("exited before answering")
	// errNotOurs says another process answers on the server's port.
	errNotOurs = errors.New("another process answers on this port")
)

// command builds the redis-server command line.
func (s *Server) command() (*exec.Cmd, error) {
	_, port, _ := net.SplitHostPort(s.Addr)
	if s.opts.Sentinel {
		// A Sentinel reads, and rewrites, a config file of its own.
		conf := filepath.Join(s.dir, "sentinel.conf")
		if _, err := os.Stat(conf); err != nil {
			lines := append([]string{"port " + port, "bind 127.0.0.1", "dir " + s.dir}, s.opts.Args...)
			if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
				return nil, err
			}
		}
		return exec.Command(s.bin, conf, "--sentinel"), nil
	}
	args := []string{
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
	}
	if t := s.opts.TLS; t != nil {
		args = append(args, "--port", "0", "--tls-port", port,
			"--tls-cert-file", t.CertFile, "--tls-key-file", t.KeyFile,
			"--tls-ca-cert-file", t.CAFile, "--tls-auth-clients", "no")
	} else {
		args = append(args, "--port", port)
	}
	if s.busPort != 0 {
		args = append(args, "--cluster-port", strconv.Itoa(s.busPort))
	}
	return exec.Command(s.bin, append(args, s.opts.Args...)...), nil
}

// waitReady polls addr until the process pid answers PING (or that it
// needs a login first), the process exits, or startTimeout passes. A PONG
// from any other process does not count: it means our server could not
// bind the port, and it is about to exit saying so.
func waitReady(addr string, useTLS bool, pid int, exited <-chan error) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("%w: %v (last: %v)", errExited, err, last)
		default:
		}
		var got int
		if got, last = pingTLS(addr, useTLS); last == nil {
			if got == pid || got == pidUnknown {
				return nil
			}
			last = fmt.Errorf("%w (pid %d, ours is %d)", errNotOurs, got, pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("no PONG within %v: %w", startTimeout, last)
}

// pidUnknown is what pingTLS reports for a server that wants a login
// before it says who it is; its port is held, so it is very likely ours.
const pidUnknown = -1

// ping sends one inline PING command and returns the answering server's
// process ID.
func ping(addr string) (pid int, err error) { return pingTLS(addr, false) }

// pingTLS sends one inline PING command, over TLS if asked (trusting any
// certificate: this only asks whether the server is up), and, once
// answered, INFO server, and returns the process_id of the server that
// answered.
func pingTLS(addr string, useTLS bool) (pid int, err error) {
	var c net.Conn
	if useTLS {
		d := &net.Dialer{Timeout: time.Second}
		c, err = tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = net.DialTimeout("tcp", addr, time.Second)
	}
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	r := bufio.NewReader(c)
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return 0, err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	switch l := strings.TrimSpace(line); {
	case strings.HasPrefix(l, "-NOAUTH"):
		return pidUnknown, nil
	case l != "+PONG":
		return 0, errors.New("unexpected reply " + strconv.Quote(line))
	}
	if _, err := c.Write([]byte("INFO server\r\n")); err != nil {
		return 0, err
	}
	// A bulk string: "$<length>\r\n<length bytes>\r\n".
	line, err = r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "$"))
	if err != nil || !strings.HasPrefix(line, "$") || n < 0 {
		return 0, errors.New("INFO: unexpected reply " + strconv.Quote(line))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, fmt.Errorf("INFO: %w", err)
	}
	for l := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server has no process_id")
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
