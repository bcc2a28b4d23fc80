package forward

import (
	"bytes"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/tbsphathuynh/proxy/internal/reqinfo"
	"github.com/tbsphathuynh/proxy/upstream"
)

// failingDial is a transport whose every dial fails with err, as net's
// would, counting the tries per server.
type failingDial struct {
	err   error
	mu    sync.Mutex
	tries map[string]int
}

func (f *failingDial) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.tries[r.URL.Host]++
	f.mu.Unlock()
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: f.err}
}

func (f *failingDial) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, v := range f.tries {
		n += v
	}
	return n
}

// TestLocalFaultIsNotTheServers: a dial that fails because the proxy is
// out of descriptors or ports gets an honest 503 with the usual body and
// a log line naming the cause, is not retried on the other server, and
// reaches no observer (passive health, breaker, latency); the same dial
// refused by the server is the server's failure, and is retried.
func TestLocalFaultIsNotTheServers(t *testing.T) {
	cases := []struct {
		name        string
		err         error
		wantStatus  int
		wantTries   int
		wantObserve int
		wantLog     string
	}{
		{"out of descriptors", os.NewSyscallError("socket", syscall.EMFILE), 503, 1, 0, "reason=emfile"},
		{"system out of descriptors", os.NewSyscallError("socket", syscall.ENFILE), 503, 1, 0, "reason=enfile"},
		{"out of buffers", os.NewSyscallError("connect", syscall.ENOBUFS), 503, 1, 0, "reason=enobufs"},
		{"out of ephemeral ports", os.NewSyscallError("connect", syscall.EADDRNOTAVAIL), 503, 1, 0, "reason=eaddrnotavail"},
		{"refused by the server", os.NewSyscallError("connect", syscall.ECONNREFUSED), 502, 2, 2, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := &failingDial{err: tc.err, tries: map[string]int{}}
			reg := upstream.NewRegistry()
			var servers []*upstream.Server
			for _, name := range []string{"a", "b"} {
				u, _ := url.Parse("http://" + name + ".invalid")
				servers = append(servers, &upstream.Server{Name: name, URL: u, Weight: 1, State: reg.State(name)})
			}
			obs := &countingObserver{}
			up := &Upstream{Name: "up", Pool: upstream.NewPool("up", servers), Picker: first{}, Transport: tr,
				Observer: obs, Retry: RetryPolicy{Attempts: 1}, RetryAfter: "1"}
			var logs bytes.Buffer
			rt := NewRoute("r", up, "", slog.New(slog.NewTextHandler(&logs, nil)))

			req := httptest.NewRequest(http.MethodGet, "/x", nil)
			info := &reqinfo.Info{}
			req = req.WithContext(reqinfo.With(req.Context(), info))
			w := httptest.NewRecorder()
			rt.ServeHTTP(w, req)

			if w.Code != tc.wantStatus {
				t.Errorf("status %d, want %d", w.Code, tc.wantStatus)
			}
			if got, want := w.Body.String(), bodyFor(tc.wantStatus); got != want {
				t.Errorf("body %q, want the usual %q", got, want)
			}
			if n := tr.total(); n != tc.wantTries {
				t.Errorf("%d tries, want %d", n, tc.wantTries)
			}
			obs.mu.Lock()
			if n := len(obs.calls); n != tc.wantObserve {
				t.Errorf("observers told of %d attempts, want %d: %v", n, tc.wantObserve, obs.calls)
			}
			obs.mu.Unlock()
			if tc.wantLog != "" {
				if !strings.Contains(logs.String(), tc.wantLog) || !strings.Contains(logs.String(), "local fault") {
					t.Errorf("log %q does not name the local cause %q", logs.String(), tc.wantLog)
				}
				if info.Server != "" {
					t.Errorf("record names server %q for a request no server was reached for", info.Server)
				}
			}
		})
	}
}

// TestLocalFaultLogIsRateLimited: a thousand requests failed by the same
// shortage make one log line, which counts them, not a thousand.
func TestLocalFaultLogIsRateLimited(t *testing.T) {
	tr := &failingDial{err: os.NewSyscallError("socket", syscall.EMFILE), tries: map[string]int{}}
	var logs bytes.Buffer
	rt := newTestRoute(t, tr, "")
	rt.log = slog.New(slog.NewTextHandler(&logs, nil))
	for range 1000 {
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		if w.Code != 503 {
			t.Fatalf("status %d, want 503", w.Code)
		}
	}
	if n := strings.Count(logs.String(), "local fault"); n < 1 || n > 2 {
		t.Errorf("%d log lines for 1000 requests failed alike, want 1 (2 if a second passed):\n%s", n, logs.String())
	}
}
