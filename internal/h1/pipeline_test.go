package h1

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A slow request followed in one write by enough pipelined ones to fill
// the read buffer: the client-gone watch reads the byte after the full
// buffer while the first is served. Whether the Direct handler serves the
// slow request or declines it (its head then stays in the buffer), every
// request is answered, in order (RFC 9112 §9.3.2).
func TestPipelineFillsTheBufferBehindASlowRequest(t *testing.T) {
	for _, serve := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct serves %v", serve), func(t *testing.T) {
			watched := make(chan struct{}, 1)
			s := New(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, r.URL.Path)
			})})
			s.watchRead = readByte(watched)
			s.Direct = directFunc(func(x *Exchange) bool {
				if string(x.Target()) != "/slow" {
					return false
				}
				// Served once the watch has read the byte after the
				// full buffer.
				awaitWatch(t, watched)
				if !serve {
					return false
				}
				x.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n/slow"))
				return true
			})
			_, addr := start(t, s)
			c, br := dial(t, addr)
			var raw strings.Builder
			want := []string{"/slow"}
			raw.WriteString("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
			for i := 0; raw.Len() < 2*readBufferSize; i++ {
				fmt.Fprintf(&raw, "GET /p%03d HTTP/1.1\r\nHost: t\r\n\r\n", i)
				want = append(want, fmt.Sprintf("/p%03d", i))
			}
			go io.WriteString(c, raw.String())
			for i, w := range want {
				if _, got := readBody(t, br, "GET"); got != w {
					t.Fatalf("answer %d is %q, want %q", i, got, w)
				}
			}
		})
	}
}

// A handler's panic reaches OnPanic with its stack.
func TestOnPanic(t *testing.T) {
	got := make(chan string, 1)
	s := New(&http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })})
	s.OnPanic = func(_ string, v any, stack []byte) {
		got <- fmt.Sprint(v, " ", strings.Contains(string(stack), "TestOnPanic"))
	}
	_, addr := start(t, s)
	c, _ := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	select {
	case g := <-got:
		if g != "boom true" {
			t.Errorf("OnPanic got %q, want the value and a stack through the handler", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnPanic not called")
	}
}

// readByte returns a watchRead hook that signals got when a watch has
// read a byte.
func readByte(got chan<- struct{}) func(int) {
	return func(n int) {
		if n == 1 {
			select {
			case got <- struct{}{}:
			default:
			}
		}
	}
}

// awaitWatch waits for a watch's read of a byte, for 10 s at most: the
// watch starts a watchDelay (and a tick) after its request.
func awaitWatch(t *testing.T, got <-chan struct{}) {
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Error("the client-gone watch did not read the pipelined byte within 10 s")
	}
}
