package h1

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
)

// flakyListener fails its first accepts as a listener of a process out of
// file descriptors does, then accepts as usual.
type flakyListener struct {
	net.Listener
	fail atomic.Int32
	err  error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fail.Add(-1) >= 0 {
		return nil, l.err
	}
	return l.Listener.Accept()
}

// TestServeRetriesAcceptErrors: a listener that runs out of descriptors
// for a moment does not stop the server; it backs off and serves the
// client when the descriptors are back, as net/http's server does, for
// both servers alike.
func TestServeRetriesAcceptErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"emfile", &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}},
		{"enfile", &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.ENFILE)}},
	} {
		for _, kind := range []string{"net/http", "h1"} {
			t.Run(tc.name+"/"+kind, func(t *testing.T) {
				raw, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				ln := &flakyListener{Listener: raw, err: tc.err}
				ln.fail.Store(3)
				hs := &http.Server{
					Handler:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
					ErrorLog: log.New(io.Discard, "", 0),
				}
				var srv interface {
					Serve(net.Listener) error
					Close() error
				} = hs
				if kind == "h1" {
					srv = New(hs)
				}
				done := make(chan error, 1)
				go func() { done <- srv.Serve(ln) }()

				type result struct {
					code int
					body string
					err  error
				}
				got := make(chan result, 1)
				tr := &http.Transport{DisableKeepAlives: true}
				go func() {
					resp, err := (&http.Client{Transport: tr}).Get("http://" + raw.Addr().String() + "/")
					if err != nil {
						got <- result{err: err}
						return
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					got <- result{code: resp.StatusCode, body: string(body)}
				}()
				select {
				case err := <-done:
					// The client waits in the backlog of a socket nobody
					// accepts on any more; closing it lets it go.
					raw.Close()
					<-got
					t.Fatalf("Serve gave up after accept errors: %v", err)
				case r := <-got:
					if r.err != nil || r.code != 200 || r.body != "ok" {
						t.Errorf("got %d %q %v, want 200 ok", r.code, r.body, r.err)
					}
				}
				srv.Close()
				if err := <-done; !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
					t.Errorf("Serve returned %v, want ErrServerClosed", err)
				}
			})
		}
	}
}
