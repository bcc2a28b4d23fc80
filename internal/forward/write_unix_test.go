//go:build unix

package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
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

// pc.Write itself, as the direct lane calls it (no bufio.Writer to retry
// a short write): it writes everything or says why not, with Conn.Write's
// errors when the exchange is killed or the connection closed under it.
func TestPconnWriteAsConnWrite(t *testing.T) {
	pair := func(t *testing.T) (*pconn, net.Conn) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		pc := &pconn{Conn: c}
		pc.useRaw()
		if pc.raw == nil {
			t.Fatal("no raw socket")
		}
		t.Cleanup(func() { pc.Close(); s.Close() })
		return pc, s
	}
	big := make([]byte, 16<<20)

	t.Run("whole", func(t *testing.T) {
		pc, s := pair(t)
		got := make(chan int64, 1)
		time.AfterFunc(100*time.Millisecond, func() {
			n, _ := io.Copy(io.Discard, s)
			got <- n
		})
		if n, err := pc.Write(big); n != len(big) || err != nil {
			t.Fatalf("wrote %d, %v; want %d, nil", n, err, len(big))
		}
		pc.Close()
		if n := <-got; n != int64(len(big)) {
			t.Errorf("the peer got %d bytes, want %d", n, len(big))
		}
	})
	t.Run("kill", func(t *testing.T) {
		pc, _ := pair(t)
		time.AfterFunc(50*time.Millisecond, pc.kill)
		n, err := pc.Write(big)
		var op *net.OpError
		if n == 0 || n == len(big) || !errors.As(err, &op) || op.Op != "write" || !op.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("killed mid-way: %d, %v; want part and Conn.Write's timeout", n, err)
		}
		if retryOnFresh(&http.Request{Method: "GET"}, fmt.Errorf("%w: %w", errWrite, err)) {
			t.Error("a killed write may be retried")
		}
	})
	t.Run("close", func(t *testing.T) {
		pc, _ := pair(t)
		time.AfterFunc(50*time.Millisecond, func() { pc.Close() })
		_, err := pc.Write(big)
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "write" || !errors.Is(err, net.ErrClosed) {
			t.Errorf("closed mid-way: %v; want Conn.Write's net.ErrClosed", err)
		}
		// Even a write of nothing says so, as Conn.Write does.
		if _, err := pc.Write(nil); !errors.Is(err, net.ErrClosed) {
			t.Errorf("nothing written after the close: %v; want net.ErrClosed", err)
		}
	})
}
