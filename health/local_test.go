package health

import (
	"context"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

// emfile is what net returns when the proxy has no descriptor left for a
// new connection.
var emfile = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", syscall.EMFILE)}

// shortOfFiles is a probe transport that fails every dial with EMFILE
// while short is set, and otherwise sends probes as the checker's own
// transport would.
type shortOfFiles struct {
	short  atomic.Bool
	failed atomic.Int64
	tr     *http.Transport
}

func (s *shortOfFiles) RoundTrip(r *http.Request) (*http.Response, error) {
	if s.short.Load() {
		s.failed.Add(1)
		return nil, emfile
	}
	return s.tr.RoundTrip(r)
}

// TestCheckerKeepsStateOnLocalFault: while the proxy is out of file
// descriptors every probe fails, and none of it is held against the
// servers: a healthy server stays in, a server that was down stays out,
// and the log says what happened, once a second at most, not once a probe.
func TestCheckerKeepsStateOnLocalFault(t *testing.T) {
	good := newBackend(t)
	pool := poolOf(t, upstream.NewRegistry(), []string{good.URL, refusedURL(t)})
	tr := &shortOfFiles{tr: &http.Transport{DisableKeepAlives: true}}
	defer tr.tr.CloseIdleConnections()
	var logs logBuffer
	c := NewChecker(pool, Config{
		Interval: 5 * time.Millisecond, Timeout: 5 * time.Second, Path: "/health",
		UnhealthyThreshold: 1, HealthyThreshold: 1, Transport: tr,
	}, logs.logger())
	c.Start(context.Background())
	defer c.Stop()

	eventually(t, "a checked up and b down", func() bool {
		_, checked := pool.Servers[0].LastCheck()
		return checked && !pool.Servers[1].Healthy()
	})
	start := time.Now()
	tr.short.Store(true)
	eventually(t, "ten rounds of probes failed for want of descriptors", func() bool { return tr.failed.Load() >= 20 })
	c.Stop()
	elapsed := time.Since(start)

	if got := names(pool); got != "a" {
		t.Errorf("available %q after local faults, want a: the servers keep their state", got)
	}
	if n := logs.count("server down"); n != 1 {
		t.Errorf("logged %d servers down, want 1 (b, refused):\n%s", n, logs.buf.String())
	}
	if n := logs.count("server up"); n != 0 {
		t.Errorf("logged %d servers up, want 0: a local fault must not bring b back:\n%s", n, logs.buf.String())
	}
	n := logs.count("health check not judged: local fault")
	if most := int(elapsed/time.Second) + 1; n < 1 || n > most {
		t.Errorf("logged the local fault %d times in %v, want 1..%d:\n%s", n, elapsed, most, logs.buf.String())
	}
	if logs.count("reason=emfile") < 1 {
		t.Errorf("the log does not name the cause:\n%s", logs.buf.String())
	}
}

// TestObserversIgnoreLocalFaults: passive health, the latency average and
// the breaker hear of an attempt the proxy's own resources failed, and
// hold none of it against the server.
func TestObserversIgnoreLocalFaults(t *testing.T) {
	pool := poolOf(t, upstream.NewRegistry(), []string{"http://10.0.0.1"})
	s := pool.Servers[0]
	p := NewPassive(pool, PassiveConfig{Enabled: true, ConsecutiveFailures: 1, EjectionTime: time.Hour}, nil)
	b := NewBreaker(pool, BreakerConfig{ConsecutiveFailures: 1, OpenTime: time.Hour}, nil)
	s.ObserveLatency(time.Millisecond)
	latency := s.Latency()
	for range 10 {
		p.Observe(s, 0, emfile, time.Microsecond)
		b.Observe(s, 0, emfile, time.Microsecond)
	}
	if n := s.Failures(); n != 0 {
		t.Errorf("passive health counted %d failures", n)
	}
	if !s.Healthy() || names(pool) != "a" {
		t.Error("the server was ejected")
	}
	if got := s.Latency(); got != latency {
		t.Errorf("latency average moved from %v to %v", latency, got)
	}
	if c := s.Circuit(); c != upstream.CircuitClosed {
		t.Errorf("circuit %v, want closed", c)
	}
	// The same attempt refused by the server counts.
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	b.Observe(s, 0, refused, time.Microsecond)
	if c := s.Circuit(); c != upstream.CircuitOpen {
		t.Errorf("circuit %v after a refused connection, want open", c)
	}
}
