package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Issue 16 B: a request body the client breaks is the client's fault. It
// is answered 400 (or logged 499 when the client is gone), never 502, and
// it never counts against the server the body was going to: not in
// passive health, the circuit breaker, retries, the latency average or the
// per-server error counts.

// brokenBodies are the raw requests of the issue, sent over real TCP; halfClose
// ends the client's side after the bytes (3 of 100 promised, then FIN).
var brokenBodies = []struct {
	name      string
	raw       string
	halfClose bool
	// reaches: whether a server may see the request's head; a body whose
	// first chunk line came with the head and is bad never reaches one.
	reaches bool
}{
	{"malformed chunk size with the head",
		"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", false, false},
	{"malformed second chunk",
		"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", false, true},
	{"3 of 100 bytes then half-close",
		"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc", true, true},
	{"chunk cut short then half-close",
		"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n64\r\nabc", true, true},
}

// sendRaw writes raw on a new connection to addr, half-closes it when asked,
// and returns the status of the answer.
func sendRaw(t *testing.T, addr, raw string, halfClose bool) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	if halfClose {
		c.(*net.TCPConn).CloseWrite()
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestBrokenRequestBodyIsTheClientsFault(t *testing.T) {
	for _, path := range []struct{ name, extra string }{
		{"fast path", fastPathOn},
		{"net/http", "client: {fast_path: false}\n"},
		{"fast path with retries", fastPathOn + "retries: {attempts: 2, max_body_bytes: 1024}\n"},
		{"net/http with retries", "client: {fast_path: false}\nretries: {attempts: 2, max_body_bytes: 1024}\n"},
	} {
		t.Run(path.name, func(t *testing.T) { testBrokenRequestBody(t, path.extra) })
	}
}

func testBrokenRequestBody(t *testing.T, extra string) {
	// The servers read the body as any would, and answer.
	var heads atomic.Int64
	h := func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			heads.Add(1)
		}
		io.Copy(io.Discard, r.Body)
	}
	a, b := backend(t, "a", h), backend(t, "b", h)
	logFile := filepath.Join(t.TempDir(), "access.log")
	p := startProxy(t, extra+fmt.Sprintf(`admin: {listen: 127.0.0.1:0}
logging: {format: json, access_log: %s}
health_checks:
  enabled: false
  passive: {consecutive_failures: 3, ejection_time: 30s, max_ejection_percent: 100}
circuit_breaker: {consecutive_failures: 3, open_time: 30s}
load_balancing: {strategy: least_latency}
servers: [{url: %s, name: a}, {url: %s, name: b}]
`, logFile, a.URL, b.URL))

	for _, c := range brokenBodies {
		before := heads.Load()
		if got := sendRaw(t, p.Addr(), c.raw, c.halfClose); got != http.StatusBadRequest {
			t.Errorf("%s: answered %d, want 400", c.name, got)
		}
		if !c.reaches && heads.Load() != before {
			t.Errorf("%s: a server saw the request; want it refused before any server is contacted", c.name)
		}
	}
	// 100 more, mixed: on the old code 3 opened a circuit and 6 ejected
	// both servers.
	for i := range 100 {
		c := brokenBodies[i%len(brokenBodies)]
		if got := sendRaw(t, p.Addr(), c.raw, c.halfClose); got != http.StatusBadRequest {
			t.Fatalf("broken body %d (%s): answered %d, want 400", i, c.name, got)
		}
	}
	sent := 100 + len(brokenBodies)

	// Every server is still in rotation, with nothing held against it.
	var state struct {
		Upstreams []struct {
			Name    string `json:"name"`
			Servers []struct {
				Name          string  `json:"name"`
				Usable        bool    `json:"usable"`
				Failures      uint64  `json:"failures"`
				Ejections     uint64  `json:"ejections"`
				Circuit       string  `json:"circuit"`
				LatencyEWMAms float64 `json:"latency_ewma_ms"`
			} `json:"servers"`
		} `json:"upstreams"`
	}
	res, err := http.Get("http://" + p.AdminAddr() + "/api/upstreams")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(res.Body).Decode(&state)
	res.Body.Close()
	if err != nil || len(state.Upstreams) != 1 || len(state.Upstreams[0].Servers) != 2 {
		t.Fatalf("/api/upstreams: %v %+v", err, state)
	}
	for _, s := range state.Upstreams[0].Servers {
		if !s.Usable || s.Failures != 0 || s.Ejections != 0 || s.Circuit != "closed" || s.LatencyEWMAms != 0 {
			t.Errorf("server %s after %d broken request bodies: %+v; want usable, no failure, no ejection, circuit closed, no latency recorded",
				s.Name, sent, s)
		}
	}
	for range 4 {
		if status, _, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/"); status != 200 {
			t.Fatalf("a clean GET after the broken bodies: %d, want 200", status)
		}
	}

	// Metrics: each broken body is a 400; no 5xx for any server.
	mfs := scrape(t, p.AdminAddr())
	var n400 float64
	for _, m := range mfs["proxy_requests_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		switch code := labels["code"]; {
		case code == "400":
			n400 += m.Counter.GetValue()
		case code[0] == '5':
			t.Errorf("proxy_requests_total%v = %v; want no 5xx", labels, m.Counter.GetValue())
		}
	}
	if n400 != float64(sent) {
		t.Errorf("proxy_requests_total{code=400} = %v, want %d", n400, sent)
	}
	if got, ok := value(mfs, "proxy_retries_total", nil); ok && got != 0 {
		t.Errorf("proxy_retries_total = %v; a broken body is never tried on another server", got)
	}

	// The access log says 400 for each, never 502.
	statuses := map[float64]int{}
	waitFor(t, "the access log", func() bool {
		clear(statuses)
		data, err := os.ReadFile(logFile)
		if err != nil {
			return false
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var l map[string]any
			if json.Unmarshal([]byte(line), &l) == nil {
				statuses[l["status"].(float64)]++
			}
		}
		return statuses[400]+statuses[200] >= sent+4
	})
	if statuses[400] != sent || len(statuses) != 2 {
		t.Errorf("access log statuses %v, want %d of 400 and the 4 clean 200s", statuses, sent)
	}
}

// A client whose connection breaks while its body is being forwarded is
// gone: 499 in the metrics, as nginx logs it, and nothing against the
// server.
func TestClientGoneMidBodyIs499(t *testing.T) {
	for _, path := range []struct{ name, extra string }{
		{"fast path", fastPathOn},
		{"net/http", "client: {fast_path: false}\n"},
	} {
		t.Run(path.name, func(t *testing.T) {
			arrived := make(chan struct{}, 1)
			a := backend(t, "a", func(w http.ResponseWriter, r *http.Request) {
				arrived <- struct{}{}
				io.Copy(io.Discard, r.Body)
			})
			p := startProxy(t, path.extra+fmt.Sprintf(`admin: {listen: 127.0.0.1:0}
health_checks: {enabled: false, passive: {consecutive_failures: 1}}
circuit_breaker: {consecutive_failures: 1, open_time: 30s}
servers: [{url: %s, name: a}]
`, a.URL))
			c, err := net.Dial("tcp", p.Addr())
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
			<-arrived // the head reached the server: the body is being forwarded
			c.(*net.TCPConn).SetLinger(0)
			c.Close() // a reset, not a FIN
			mfs := map[string]*dto.MetricFamily{}
			// Counted, under whatever code: a series of the server may
			// exist at 0 before the count lands.
			waitFor(t, "the request to be counted", func() bool {
				mfs = scrape(t, p.AdminAddr())
				total := 0.0
				for _, m := range mfs["proxy_requests_total"].GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() == "server" && l.GetValue() == "a" {
							total += m.GetCounter().GetValue()
						}
					}
				}
				return total > 0
			})
			if got, _ := value(mfs, "proxy_requests_total", map[string]string{"server": "a", "code": "499"}); got != 1 {
				t.Errorf("proxy_requests_total{server=a,code=499} = %v, want 1 (%v)", got, mfs["proxy_requests_total"])
			}
			srv := p.rt.Load().upstreams["default"].pool.Servers[0]
			if !srv.Usable(time.Now()) || srv.Failures() != 0 {
				t.Errorf("server after a client left mid-body: usable %v, %d failures; want usable, none", srv.Usable(time.Now()), srv.Failures())
			}
			if status, _, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/"); status != 200 {
				t.Errorf("next GET: %d, want 200", status)
			}
		})
	}
}
