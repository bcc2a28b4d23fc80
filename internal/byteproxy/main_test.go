package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The measuring stick must do the benchmark's work, or its figures mean
// nothing: kept-alive GETs come back whole from the backends in turn, in
// both of its modes.
func TestRelaysKeptAliveRequests(t *testing.T) {
	t.Run("bytes", func(t *testing.T) { testRelays(t, serveAll) })
	t.Run("h1", func(t *testing.T) { testRelays(t, serveH1) })
}

func testRelays(t *testing.T, serve func(net.Listener, []string) error) {
	var backends []string
	for _, name := range []string{"a", "b"} {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name+strings.Repeat("x", 1023))
		}))
		t.Cleanup(s.Close)
		backends = append(backends, s.Listener.Addr().String())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serve(ln, backends)

	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	seen := map[byte]int{}
	for range 6 {
		// A new connection each time goes to the next backend.
		tr.CloseIdleConnections()
		for range 3 {
			res, err := client.Get("http://" + ln.Addr().String() + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || len(body) != 1024 {
				t.Fatalf("body of %d bytes, %v", len(body), err)
			}
			seen[body[0]]++
		}
	}
	if seen['a'] == 0 || seen['b'] == 0 {
		t.Errorf("answers per backend %v, want both", seen)
	}
}
