//go:build unix

package loadtest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestIdleConnectionMemory measures what idle keep-alive client
// connections cost the proxy: it starts the proxy binary in front of a
// loopback server, opens $PROXY_IDLE_CONNS connections to it, and reads
// the proxy's resident memory (VmRSS) before, once they are open, and once
// each has carried one request and sits idle between requests, the state a
// browser's or another proxy's pooled connection spends its life in.
//
// It is too heavy for every run:
//
//	PROXY_IDLE_CONNS=10000 go test -run IdleConnectionMemory -v ./internal/loadtest
//
// or scripts/idle-conns.sh. $PROXY_BIN names a built binary (else the test
// builds one); $PROXY_IDLE_MAX_KIB, when set, fails the test above that
// many KiB per connection; $PROXY_IDLE_PROFILE names a file for the heap
// profile of the idle state.
func TestIdleConnectionMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PROXY_IDLE_CONNS"))
	if n <= 0 {
		t.Skip("set PROXY_IDLE_CONNS to the number of connections to hold open")
	}
	raiseFileLimit(t, n+512) // each process holds one end of every connection

	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer be.Close()

	bin := os.Getenv("PROXY_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "proxy-server")
		build := exec.Command("go", "build", "-o", bin, "github.com/tbsphathuynh/proxy")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	addr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "proxy.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: %s
admin: {listen: %s, pprof: true}
servers: [{url: %s}]
health_checks: {enabled: false}
logging: {level: error, access_log: "off"}
client: {idle_timeout: 10m}
`, addr, adminAddr, be.URL)), 0o644)
	proxy := exec.Command(bin, "-config", cfg)
	proxy.Stderr = os.Stderr
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		proxy.Process.Signal(syscall.SIGTERM)
		proxy.Wait()
	}()
	waitAnswering(t, "http://"+addr+"/")

	// settle lets the proxy collect the garbage of what just happened, so
	// the figure is memory held, not memory awaiting collection (the
	// runtime does the same by itself within two minutes), and lets the
	// waits of the connections move to small stacks (h1's shrinkAfter,
	// 1 s), so that the CPU measured is the idle state's.
	settle := func(phase string) int64 {
		time.Sleep(2 * time.Second)
		st := memStats(t, "http://"+adminAddr)
		// The CPU the proxy spends meanwhile, with nothing to do: an
		// idle connection must cost none (no timers, no polling).
		cpu := cpuTicks(t, proxy.Process.Pid)
		time.Sleep(3 * time.Second)
		cpu = cpuTicks(t, proxy.Process.Pid) - cpu
		rss := vmRSS(t, proxy.Process.Pid)
		t.Logf("%-34s VmRSS %7d KiB, heap in use %7d KiB, stacks %7d KiB, goroutines %d, CPU %d ticks in 3 s",
			phase+":", rss, st.heap>>10, st.stack>>10, st.goroutines, cpu)
		return rss
	}
	before := settle("at rest")

	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	var failed atomic.Int64
	next := atomic.Int64{}
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := net.Dial("tcp", addr)
				if err != nil {
					failed.Add(1)
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d connections failed", f, n)
	}
	opened := settle(fmt.Sprintf("%d connections open", n))

	next.Store(0)
	for range 32 {
		wg.Go(func() {
			br := bufio.NewReaderSize(nil, 512)
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c := conns[i]
				br.Reset(c)
				c.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: idle.test\r\n\r\n"); err != nil {
					failed.Add(1)
					continue
				}
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				c.SetDeadline(time.Time{})
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d requests failed", f, n)
	}
	used := settle("each idle after one request")
	if f := os.Getenv("PROXY_IDLE_PROFILE"); f != "" {
		// What the idle connections hold, for go tool pprof.
		res, err := http.Get("http://" + adminAddr + "/debug/pprof/heap")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		os.WriteFile(f, b, 0o644)
	}

	perOpen := float64(opened-before) / float64(n)
	perUsed := float64(used-before) / float64(n)
	t.Logf("per connection: %.1f KiB open, %.1f KiB idle after a request", perOpen, perUsed)
	if max, _ := strconv.ParseFloat(os.Getenv("PROXY_IDLE_MAX_KIB"), 64); max > 0 && perUsed > max {
		t.Errorf("%.1f KiB per idle connection, above %.1f", perUsed, max)
	}
}

// capAt is want, or max if less: Rlimit's fields are uint64 on Linux and
// int64 on the BSDs.
func capAt[T int64 | uint64](max T, want int) T { return min(T(want), max) }

// raiseFileLimit lifts this process's open-file limit, which the proxy
// inherits, to at least want (up to the hard limit).
func raiseFileLimit(t *testing.T, want int) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if uint64(rl.Cur) >= uint64(want) {
		return
	}
	rl.Cur = capAt(rl.Max, want)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if uint64(rl.Cur) < uint64(want) {
		t.Skipf("open-file hard limit %d is below the %d needed", rl.Max, want)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitAnswering(t *testing.T, url string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy not answering %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type runtimeStats struct{ heap, stack, goroutines int64 }

// memStats runs a garbage collection in the proxy through its pprof
// endpoint and reads its heap, stack and goroutine figures.
func memStats(t *testing.T, admin string) runtimeStats {
	var st runtimeStats
	get := func(path string) string {
		res, err := http.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	for _, line := range strings.Split(get("/debug/pprof/heap?gc=1&debug=1"), "\n") {
		if v, ok := strings.CutPrefix(line, "# HeapInuse = "); ok {
			st.heap, _ = strconv.ParseInt(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "# Stack = "); ok {
			st.stack, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	first, _, _ := strings.Cut(get("/debug/pprof/goroutine?debug=1"), "\n")
	if v, ok := strings.CutPrefix(first, "goroutine profile: total "); ok {
		st.goroutines, _ = strconv.ParseInt(v, 10, 64)
	}
	return st
}

// vmRSS reads a process's resident set size in KiB.
// cpuTicks is the user and system CPU time pid has used, in clock ticks
// (utime and stime of /proc/PID/stat; proc(5)).
func cpuTicks(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name, in parentheses, may hold spaces: the fields
	// counted start after its closing one, with the state (field 3).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		t.Fatalf("short /proc stat: %q", b)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}

func vmRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kib
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}
