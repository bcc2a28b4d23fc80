// Package rawhttp is the bare HTTP/1.1 ends the benchmarks put around the
// code they measure: a server answering every request with the same bytes
// and a client sending one request over and over, skipping the answers, neither allocating per request, so
// allocs/op and ns/op are the measured code's.
package rawhttp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Serve answers every body-less request on every connection with res, on
// a loopback listener closed when tb ends, and returns its address.
func Serve(tb testing.TB, res []byte) string {
	return serve(tb, res, func(br *bufio.Reader) error { return skipHead(br) })
}

// Record is Serve for a test that looks at what reached the server: each
// request head, byte for byte, goes to heads. A connection closes after
// an answer that says Connection: close.
func Record(tb testing.TB, res string) (addr string, heads <-chan string) {
	ch := make(chan string, 16)
	addr = serve(tb, []byte(res), func(br *bufio.Reader) error {
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			head.WriteString(line)
			if line == "\r\n" {
				ch <- head.String()
				if strings.Contains(res, "Connection: close") {
					return errClose
				}
				return nil
			}
		}
	})
	return addr, ch
}

var errClose = errors.New("rawhttp: the answer closes the connection")

// serve answers res on every connection each time readHead has read a
// request's head; an error from it ends the connection, after the answer
// for errClose.
func serve(tb testing.TB, res []byte, readHead func(*bufio.Reader) error) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReaderSize(c, 16<<10)
				for {
					err := readHead(br)
					if err != nil && err != errClose {
						return
					}
					if _, werr := c.Write(res); werr != nil || err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// Response is a 200 answer with a body of size bytes.
func Response(size int) []byte {
	return []byte("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
		strconv.Itoa(size) + "\r\n\r\n" + string(bytes.Repeat([]byte("x"), size)))
}

// Drive sends req on one keep-alive connection to addr and skips each
// answer, for as many rounds as b asks, reporting allocations: a client
// that costs the measured server nothing per request.
//
// It also reports the process's user and system CPU time per request
// (user-µs/op, sys-µs/op). One connection makes ns/op a round trip's
// latency, mostly waiting; CPU time is what a busy proxy runs out of, and
// user time, which the system calls do not blur, is what changes to the
// request path move. Both include the client's and the backend's small
// share, the same from one run to the next.
func Drive(b *testing.B, addr string, req []byte) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 16<<10)
	b.ReportAllocs()
	user0, sys0 := cpuTimes()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if err := SkipResponse(br); err != nil {
			b.Fatal(err)
		}
	}
	user1, sys1 := cpuTimes()
	n := float64(b.N) * 1e3 // to µs
	b.ReportMetric(float64(user1-user0)/n, "user-µs/op")
	b.ReportMetric(float64(sys1-sys0)/n, "sys-µs/op")
}

// ReadAnswer reads one whole answer to a request of method from br, for a
// test: its response and body.
func ReadAnswer(tb testing.TB, br *bufio.Reader, method string) (*http.Response, string) {
	tb.Helper()
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		tb.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return res, string(b)
}

// SkipResponse reads one response with a Content-Length from br.
func SkipResponse(br *bufio.Reader) error {
	n := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			if n, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return err
			}
		}
	}
	if n < 0 {
		return errors.New("rawhttp: response without Content-Length")
	}
	_, err := br.Discard(n)
	return err
}

// skipHead reads up to the blank line that ends a head.
func skipHead(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			return nil
		}
	}
}
