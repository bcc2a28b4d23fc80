package server

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Many keep-alive clients through the lane, with servers that fail,
// answer slowly, cut bodies short, clients that leave mid-request, and
// reloads: every answer a client reads whole must be the one to its own
// request (no head or buffer of another request's), and nothing races.
func TestDirectLaneUnderStress(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request) {
		echo := r.URL.RequestURI() + "|" + r.Header.Get("X-Id") + "|" + r.Header.Get("X-Request-Id") + "|" + r.Host
		switch {
		case strings.Contains(r.URL.Path, "fail"):
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, echo)
		case strings.Contains(r.URL.Path, "slow"):
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
			io.WriteString(w, echo)
		case strings.Contains(r.URL.Path, "cut"):
			w.Header().Set("Content-Length", "100000")
			io.WriteString(w, echo)
			panic(http.ErrAbortHandler)
		case strings.Contains(r.URL.Path, "big"):
			w.Header().Set("X-Echo", echo)
			io.WriteString(w, echo)
			w.Write(make([]byte, 100000))
		case strings.Contains(r.URL.Path, "hints"):
			w.Header().Set("Link", "</a>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, echo)
		default:
			w.Header().Set("X-Echo", echo)
			io.WriteString(w, echo)
		}
	}
	a, b := backend(t, "a", h), backend(t, "b", h)
	cfg1 := "retries: {attempts: 1, per_try_timeout: 15ms}\nservers:\n" + servers(a, b)
	cfg2 := "retries: {attempts: 1}\nclient: {direct_lane: true}\nload_balancing: {strategy: least_connections}\nservers:\n" + servers(b, a)
	p := startProxy(t, cfg1)

	stop := make(chan struct{})
	var reloads sync.WaitGroup
	reloads.Add(1)
	go func() {
		defer reloads.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if i%2 == 0 {
				reloadYAML(t, p, cfg2)
			} else {
				reloadYAML(t, p, cfg1)
			}
		}
	}()

	var bad, ok atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			var c net.Conn
			var br *bufio.Reader
			for i := range 150 {
				if c == nil {
					var err error
					if c, err = net.Dial("tcp", p.Addr()); err != nil {
						t.Error(err)
						return
					}
					br = bufio.NewReader(c)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				kinds := []string{"plain", "slow", "fail", "cut", "big", "hints", "plain", "plain"}
				kind := kinds[rng.IntN(len(kinds))]
				id := fmt.Sprintf("g%di%d", g, i)
				path := fmt.Sprintf("/%s/%s?n=%d", kind, id, i)
				host := fmt.Sprintf("host%d.example:80", g)
				method := "GET"
				if rng.IntN(5) == 0 {
					method = "HEAD"
				}
				req := method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\nX-Id: " + id + "\r\n\r\n"
				if rng.IntN(10) == 0 {
					// Pipeline two.
					req += "GET " + path + "&second HTTP/1.1\r\nHost: " + host + "\r\nX-Id: " + id + "\r\n\r\n"
				}
				if _, err := io.WriteString(c, req); err != nil {
					c.Close()
					c = nil
					continue
				}
				if rng.IntN(8) == 0 {
					// Leave mid-request.
					time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
					c.Close()
					c = nil
					continue
				}
				n := 1 + strings.Count(req, "&second")
				for j := range n {
					creq, _ := http.NewRequest(method, "http://x"+path, nil)
					if j == 1 {
						creq.Method = "GET"
					}
					res, err := http.ReadResponse(br, creq)
					for err == nil && res.StatusCode < 200 {
						res, err = http.ReadResponse(br, creq)
					}
					if err != nil {
						if kind != "cut" {
							t.Errorf("%s %s: %v", method, path, err)
						}
						c.Close()
						c = nil
						break
					}
					body, err := io.ReadAll(res.Body)
					res.Body.Close()
					if err != nil {
						if kind != "cut" {
							t.Errorf("%s %s: body: %v", method, path, err)
						}
						c.Close()
						c = nil
						break
					}
					wantURI := path
					if j == 1 {
						wantURI += "&second"
					}
					rid := res.Header.Get("X-Request-Id")
					want := wantURI + "|" + id + "|" + rid + "|" + host
					if res.Header.Get("X-Request-Id") == "" {
						t.Errorf("%s %s: no request id", method, path)
					}
					got := string(body)
					if kind == "big" && len(got) > len(want) {
						got = got[:len(want)]
					}
					if method == "HEAD" && j == 0 {
						got = res.Header.Get("X-Echo")
						if kind != "plain" && kind != "big" {
							got = want
						}
					}
					if kind == "cut" || res.StatusCode == 504 || res.StatusCode == 502 && res.Header.Get("X-Backend") == "" || strings.HasPrefix(got, "504 Gateway Timeout") || strings.HasPrefix(got, "502 Bad Gateway:") {
						got = want
					}
					if got != want {
						bad.Add(1)
						t.Errorf("%s %s: got %q want %q (status %d)", method, path, got, want, res.StatusCode)
					} else {
						ok.Add(1)
					}
					if res.Close {
						c.Close()
						c = nil
						break
					}
				}
			}
			if c != nil {
				c.Close()
			}
		}()
	}
	wg.Wait()
	close(stop)
	reloads.Wait()
	t.Logf("ok %d, bad %d", ok.Load(), bad.Load())
}
