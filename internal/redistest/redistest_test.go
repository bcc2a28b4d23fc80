package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no server's wait goroutine outlives its test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestStopStart(t *testing.T) {
	s := NewServer(t)
	if _, err := ping(s.Addr); err != nil {
		t.Fatalf("fresh server: %v", err)
	}
	s.Stop()
	if _, err := ping(s.Addr); err == nil {
		t.Fatal("stopped server still answers PING")
	}
	s.Stop() // idempotent
	s.Start()
	if _, err := ping(s.Addr); err != nil {
		t.Fatalf("restarted server: %v", err)
	}
	s.Start() // no-op while running
	if _, err := ping(s.Addr); err != nil {
		t.Fatalf("after second Start: %v", err)
	}
}

func TestStartReturnsAddrAndStop(t *testing.T) {
	addr, stop := Start(t)
	if _, err := ping(addr); err != nil {
		t.Fatalf("ping: %v", err)
	}
	stop()
	if _, err := ping(addr); err == nil {
		t.Fatal("server answers after stop")
	}
}

func TestTwoServersDifferentPorts(t *testing.T) {
	a, b := NewServer(t), NewServer(t)
	if a.Addr == b.Addr {
		t.Fatalf("both servers on %s", a.Addr)
	}
}

// fatalTB records the first Fatal instead of failing the real test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit() // as the real Fatalf does: the caller stops here
}

func (f *fatalTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

func TestMissingBinaryFailsLoudly(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		NewServer(f)
		t.Error("NewServer returned without redis-server on PATH")
	}()
	<-done
	if want := "redis-server not installed: run make test, which installs it"; !strings.HasPrefix(f.msg, want) {
		t.Errorf("fatal message = %q, want it to start %q", f.msg, want)
	}
}

// fakeRedis answers PING and INFO on a loopback port as a Redis server of
// another process would, until the test ends.
func fakeRedis(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					reply := "+PONG\r\n"
					if strings.HasPrefix(line, "INFO") {
						info := "# Server\r\nprocess_id:1\r\n"
						reply = fmt.Sprintf("$%d\r\n%s\r\n", len(info), info)
					}
					if _, err := c.Write([]byte(reply)); err != nil {
						return
					}
				}
			})
		}
	})
	return l.Addr().String()
}

// A server that cannot bind its port because another process serves Redis
// there must not count as started: the test would then use, and lose with
// that process, someone else's server.
func TestStartOnATakenPortFails(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), Addr: fakeRedis(t)}
	t.Cleanup(s.Stop)
	err = s.start()
	if err == nil {
		t.Fatalf("start on %s, a port another process serves, succeeded", s.Addr)
	}
	if !strings.Contains(err.Error(), "exited before answering") {
		t.Errorf("err = %v, want our process's exit reported", err)
	}
}
