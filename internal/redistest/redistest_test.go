package redistest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no server's wait goroutine outlives its test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestStopStart(t *testing.T) {
	s := NewServer(t)
	if err := ping(s.Addr); err != nil {
		t.Fatalf("fresh server: %v", err)
	}
	s.Stop()
	if err := ping(s.Addr); err == nil {
		t.Fatal("stopped server still answers PING")
	}
	s.Stop() // idempotent
	s.Start()
	if err := ping(s.Addr); err != nil {
		t.Fatalf("restarted server: %v", err)
	}
	s.Start() // no-op while running
	if err := ping(s.Addr); err != nil {
		t.Fatalf("after second Start: %v", err)
	}
}

func TestStartReturnsAddrAndStop(t *testing.T) {
	addr, stop := Start(t)
	if err := ping(addr); err != nil {
		t.Fatalf("ping: %v", err)
	}
	stop()
	if err := ping(addr); err == nil {
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
