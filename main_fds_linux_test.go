package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// nofileEnv, set in the environment of this test binary, makes it a
// helper: it lowers its own RLIMIT_NOFILE (soft and hard, so the Go
// runtime of the next program cannot raise it again) to the value and
// executes the proxy with the rest of its arguments. The test process's
// own limit is never touched.
const nofileEnv = "PROXY_TEST_EXEC_WITH_NOFILE"

func init() {
	v := os.Getenv(nofileEnv)
	if v == "" {
		return
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err == nil {
		err = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n})
	}
	if err == nil {
		env := slicesWithout(os.Environ(), nofileEnv+"=")
		err = syscall.Exec(os.Args[1], os.Args[1:], env)
	}
	fmt.Fprintln(os.Stderr, "nofile helper:", err)
	os.Exit(2)
}

func slicesWithout(env []string, prefix string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}

// startLimited starts the proxy with RLIMIT_NOFILE lowered to n.
func startLimited(t *testing.T, n int, args ...string) *proc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{binary}, args...)...)
	cmd.Env = append(os.Environ(), nofileEnv+"="+strconv.Itoa(n))
	return startCmd(t, cmd)
}

// TestOutOfDescriptorsBlamesNoServer is issue 18's repro under a low
// RLIMIT_NOFILE: extra client connections take every descriptor the proxy
// has. The clients already connected keep being served, every server
// stays in rotation (health checks that cannot get a descriptor judge
// nothing), and the accept errors are logged and counted; once the extra
// connections go, new clients are served again.
func TestOutOfDescriptorsBlamesNoServer(t *testing.T) {
	// warm is a barrier for the requests to /warm: each waits until all
	// have come (see below).
	const warmers = 8
	var warm sync.WaitGroup
	warm.Add(warmers)
	backend := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/warm" {
				warm.Done()
				warm.Wait()
			}
			io.WriteString(w, name)
		}))
		t.Cleanup(s.Close)
		return s
	}
	a, b := backend("a"), backend("b")
	addr, adminAddr := freePort(t), freePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`listen: %s
admin: {listen: %s}
health_checks: {interval: 1s, timeout: 1s, path: /health, unhealthy_threshold: 3}
servers:
  - url: %s
  - url: %s
`, addr, adminAddr, a.URL, b.URL))
	const limit = 128
	p := startLimited(t, limit, "-config", cfg)
	p.waitLog(t, "proxy listening")

	// Every request of an established client must find a pooled server
	// connection: without a descriptor the proxy cannot open another, and
	// answers 503 as it should. The clients below have at most four
	// requests in flight, which a loaded machine may put all on one
	// server at some moment of the shortage, so each server gets four
	// connections first: eight requests in flight at once, round robin.
	var warming sync.WaitGroup
	for range warmers {
		warming.Go(func() {
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get("http://" + addr + "/warm")
			if err != nil {
				t.Errorf("warming the server connections: %v", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	warming.Wait()

	// Established keep-alive clients, one connection each, asking in a
	// loop from before the shortage to the end.
	const clients = 4
	var (
		stop             = make(chan struct{})
		wg               sync.WaitGroup
		served, failed   atomic.Int64
		shortage         atomic.Bool
		firstFailure     atomic.Value
		servedInShortage atomic.Int64
	)
	ready := make(chan struct{}, clients)
	for range clients {
		tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
		t.Cleanup(tr.CloseIdleConnections)
		c := &http.Client{Transport: tr}
		wg.Go(func() {
			first := true
			for {
				select {
				case <-stop:
					return
				default:
				}
				during := shortage.Load()
				resp, err := c.Get("http://" + addr + "/")
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d: %q", resp.StatusCode, body)
					}
				}
				if err != nil {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
					continue
				}
				served.Add(1)
				if during {
					servedInShortage.Add(1)
				}
				if first {
					first = false
					ready <- struct{}{}
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	for range clients {
		<-ready
	}

	// Extra connections, more than the proxy has descriptors, held open.
	var extra []net.Conn
	defer func() {
		for _, c := range extra {
			c.Close()
		}
	}()
	for range 2 * limit {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("extra connection: %v", err)
		}
		extra = append(extra, c)
	}
	line := p.waitLog(t, `accept failed`)
	if !strings.Contains(line, "emfile") {
		t.Errorf("accept error log line does not name the cause: %s", line)
	}
	shortage.Store(true)

	// Through five health-check rounds of shortage (a timeout a loaded
	// machine meets: at 100 ms, checks timed out beside other load and
	// took both servers out, which is not what this tests), which the
	// checks make on descriptors from the reserve: the established clients are served
	// and both servers stay up.
	checksBefore := sumOf(scrape(t, adminAddr), "proxy_health_check_duration_seconds_count")
	deadline := time.Now().Add(60 * time.Second)
	var metrics string
	for {
		metrics = scrape(t, adminAddr)
		checks := sumOf(metrics, "proxy_health_check_duration_seconds_count") - checksBefore
		if checks >= 10 && servedInShortage.Load() >= 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("in the shortage: %v health checks made, %d answers to established clients", checks, servedInShortage.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{
		`proxy_upstream_server_up\{[^}]*server="[^"]*"[^}]*\} 1\n(?s:.*)proxy_upstream_server_up\{[^}]*\} 1\n`,
		`proxy_accept_errors_total\{reason="emfile"\} [1-9]`,
	} {
		if !regexp.MustCompile(want).MatchString(metrics) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "proxy_upstream_server_up", "proxy_accept_errors_total"))
		}
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests of established clients failed, first: %v", n, n+served.Load(), firstFailure.Load())
	}

	// The extra connections go: a new client is served again.
	for _, c := range extra {
		c.Close()
	}
	extra = nil
	deadline = time.Now().Add(15 * time.Second)
	for {
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new client served after the shortage: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scrape returns the admin listener's /metrics page.
func scrape(t *testing.T, adminAddr string) string {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	resp, err := (&http.Client{Transport: tr}).Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatalf("admin /metrics in the shortage: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// sumOf adds up the samples of the metric called name.
func sumOf(page, name string) float64 {
	total := 0.0
	for _, l := range strings.Split(page, "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
			total += v
		}
	}
	return total
}

func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}
