//go:build unix

package forward

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// A request head larger than the socket's buffers, to a server that reads
// it only after a while, reaches it whole: the write waits for the socket
// to take more rather than failing or losing bytes.
func TestClientWriteWaitsForASlowServer(t *testing.T) {
	value := strings.Repeat("0123456789abcdef", 1<<20) // 16 MiB, more than loopback buffers hold
	accepted := make(chan struct{})
	read := make(chan struct{})
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("X-Big"); got != value {
			t.Errorf("the server got a %d-byte header, want %d", len(got), len(value))
		}
		io.WriteString(w, "hello")
	}))
	s.Config.MaxHeaderBytes = 2 * len(value)
	s.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		close(accepted)
		<-read // reads nothing until the test says so
		return ctx
	}
	s.Start()
	t.Cleanup(s.Close)
	var once sync.Once
	release := func() { once.Do(func() { close(read) }) }
	t.Cleanup(release) // before s.Close, which waits for the handler

	tr := newTestTransport(t, Timeouts{})
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("GET", s.URL+"/", nil)
		req.Header.Set("X-Big", value)
		res, err := tr.RoundTrip(req)
		if err == nil {
			_, err = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		done <- err
	}()
	<-accepted
	select {
	case err := <-done:
		t.Fatalf("a 16 MiB head was written before the server read any (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if pcs, ok := idlePconns(tr); !ok || len(pcs) != 1 || pcs[0].raw == nil {
		t.Fatal("the exchange did not go through our client's raw socket")
	}
}
