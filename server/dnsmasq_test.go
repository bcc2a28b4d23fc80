package server

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// dnsmasq is a real DNS server on a loopback port, answering from a hosts
// file the test rewrites (re-read on SIGHUP) and from SRV records given at
// start.
type dnsmasq struct {
	t     testing.TB
	addr  string
	hosts string
	bin   string
	args  []string
	cmd   *exec.Cmd
	// exited is closed when cmd has ended.
	exited chan struct{}
	log    *logBuffer
}

// startDNSMasq runs dnsmasq with the given hosts file content and extra
// arguments (such as --srv-host), and stops it when the test ends. It
// skips the test when dnsmasq is not installed (scripts/deps.sh installs
// it).
func startDNSMasq(t testing.TB, hosts string, args ...string) *dnsmasq {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/dnsmasq"); err != nil {
			t.Skip("dnsmasq is not installed (scripts/deps.sh installs it): skipping the DNS discovery test")
		}
	}
	dir := t.TempDir()
	d := &dnsmasq{t: t, hosts: filepath.Join(dir, "hosts"), log: &logBuffer{}, bin: bin, args: args}
	d.setHosts(hosts)
	for range 5 {
		// dnsmasq takes the port itself; a free port found a moment ago
		// may be taken by then, so try a few.
		port := freeDNSPort(t)
		d.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if d.run() {
			return d
		}
	}
	t.Fatalf("dnsmasq did not start: %s", d.log.String())
	return nil
}

// restart runs dnsmasq again on the address it had, after stop: the DNS
// server is back.
func (d *dnsmasq) restart() {
	d.t.Helper()
	if !d.run() {
		state := "still running, not answering after 10 s"
		select {
		case <-d.exited:
			state = "exited: " + d.cmd.ProcessState.String()
		default:
		}
		d.t.Fatalf("dnsmasq did not start again on %s (%s): %s", d.addr, state, d.log.String())
	}
}

// run starts dnsmasq on d.addr and reports whether it answers there.
func (d *dnsmasq) run() bool {
	d.t.Helper()
	_, port, _ := net.SplitHostPort(d.addr)
	all := append([]string{
		"--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--listen-address=127.0.0.1", "--bind-interfaces", "--port=" + port,
		"--addn-hosts=" + d.hosts, "--user=root", "--pid-file=", "--log-facility=-",
		// Answers carry TTL 1 so the proxy honours it over refresh.
		"--local-ttl=1",
		// Names under test. are answered here only: an AAAA query for a
		// name with only A records gets an empty answer, not REFUSED for
		// want of an upstream server to forward it to.
		"--local=/test/",
	}, d.args...)
	cmd := exec.Command(d.bin, all...)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("dnsmasq: %v", err)
	}
	exited := make(chan struct{})
	d.cmd, d.exited = cmd, exited
	go func() { cmd.Wait(); close(exited) }()
	d.t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); <-exited })
	return d.listening(exited)
}

// listening waits until dnsmasq answers on its port, or reports false if
// it exited (its port was taken).
func (d *dnsmasq) listening(exited chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if d.answers() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// answers sends a query for a name dnsmasq does not know and reports
// whether any answer came.
func (d *dnsmasq) answers() bool {
	c, err := net.Dial("udp", d.addr)
	if err != nil {
		return false
	}
	defer c.Close()
	// A minimal query: ID 1, RD, one question "x." type A class IN.
	q := []byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'x', 0, 0, 1, 0, 1}
	c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Write(q); err != nil {
		return false
	}
	buf := make([]byte, 512)
	_, err = c.Read(buf)
	return err == nil
}

// setHosts rewrites the hosts file and has dnsmasq re-read it.
func (d *dnsmasq) setHosts(hosts string) {
	d.t.Helper()
	tmp := d.hosts + ".tmp"
	if err := os.WriteFile(tmp, []byte(hosts), 0o644); err != nil {
		d.t.Fatal(err)
	}
	if err := os.Rename(tmp, d.hosts); err != nil {
		d.t.Fatal(err)
	}
	if d.cmd != nil && d.cmd.Process != nil {
		select {
		case <-d.exited:
			return // stopped: the file is read when it starts again
		default:
		}
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			d.t.Fatalf("SIGHUP dnsmasq: %v", err)
		}
	}
}

// stop ends dnsmasq and waits until it has exited: the DNS server is
// gone, and its port free for restart.
func (d *dnsmasq) stop() {
	d.t.Helper()
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.exited
}

// freeDNSPort finds a UDP port free on 127.0.0.1 below the kernel's
// ephemeral range. restart needs the same port back after a minute of
// outage, and a port from the ephemeral range may meanwhile be taken as
// the source port of any process's query (a fresh-clone run beside other
// load lost it once).
func freeDNSPort(t testing.TB) int {
	t.Helper()
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				lo = n
			}
		}
	}
	const from = 10000
	if lo <= from+1000 {
		lo = 65536 // no room below the range: take any port
	}
	for range 100 {
		port := from + rand.IntN(lo-from)
		if port > 65535 {
			port = 0
		}
		c, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		port = c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		return port
	}
	t.Fatal("no free UDP port for dnsmasq")
	return 0
}

// loopbackBackends starts one backend per address 127.0.0.2, 127.0.0.3,
// ... all on one port, as the servers behind an A record are; each names
// itself in X-Backend and counts its requests.
func loopbackBackends(t testing.TB, n int, h http.HandlerFunc) (port int, hits *hitCounter) {
	t.Helper()
	hits = &hitCounter{n: map[string]int{}}
	for attempt := 0; attempt < 10; attempt++ {
		var lns []net.Listener
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Skipf("cannot listen on 127.0.0.2 (is lo routing 127/8?): %v", err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		lns = append(lns, ln)
		for i := 3; i < 2+n; i++ {
			if ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", i, port)); err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) < n {
			for _, l := range lns {
				l.Close()
			}
			continue
		}
		for i, ln := range lns {
			name := fmt.Sprintf("127.0.0.%d", i+2)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.add(name)
				w.Header().Set("X-Backend", name)
				if h != nil {
					h(w, r)
				}
			}))
			srv.Listener = ln
			srv.Start()
			t.Cleanup(srv.Close)
		}
		return port, hits
	}
	t.Fatal("no port free on every loopback address")
	return 0, nil
}

// hitCounter counts requests per backend; safe for concurrent use.
type hitCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *hitCounter) add(name string) {
	h.mu.Lock()
	h.n[name]++
	h.mu.Unlock()
}

func (h *hitCounter) get(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[name]
}

// hostsFile renders a hosts file giving name each address.
func hostsFile(name string, addrs ...string) string {
	var b bytes.Buffer
	for _, a := range addrs {
		fmt.Fprintf(&b, "%s %s\n", a, name)
	}
	return b.String()
}
