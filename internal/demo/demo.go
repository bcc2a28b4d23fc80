// Package demo runs small backends on loopback that name themselves, so
// `proxy-server -demo` shows load balancing with no setup.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Backend is one demo server.
type Backend struct {
	Name string
	URL  string
	srv  *http.Server
	// flaky backends fail their health check for FlakyDown out of every
	// FlakyCycle, so the demo shows a server leave the pool and rejoin it.
	flaky   bool
	started time.Time
}

// The flaky backend's rhythm: healthy for 40s, then failing for 20s.
const (
	FlakyCycle = time.Minute
	FlakyDown  = 20 * time.Second
)

// Ports are where the demo backends listen, matching config.yaml at the
// repository root.
var Ports = []int{9001, 9002, 9003}

// Start runs one backend per port in ports on 127.0.0.1; a port already in
// use is replaced by a free one. Stop them with the returned function.
func Start(log *slog.Logger, ports []int) ([]*Backend, func(), error) {
	var backends []*Backend
	var wg sync.WaitGroup
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, b := range backends {
			_ = b.srv.Shutdown(ctx)
		}
		wg.Wait()
	}
	for i, port := range ports {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			ln, err = net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				stop()
				return nil, nil, err
			}
		}
		b := &Backend{
			Name:    fmt.Sprintf("backend-%d", i+1),
			URL:     "http://" + ln.Addr().String(),
			flaky:   i == len(ports)-1,
			started: time.Now(),
		}
		b.srv = &http.Server{Handler: b.handler(), ReadHeaderTimeout: 5 * time.Second}
		backends = append(backends, b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("demo backend", "name", b.Name, "err", err)
			}
		}()
	}
	return backends, stop, nil
}

// Serve runs one demo backend named name on addr until ctx ends: the
// backends of the compose stack in deploy/, each in its own container.
// A flaky one fails its health check as the last backend of Start does.
func Serve(ctx context.Context, log *slog.Logger, addr, name string, flaky bool) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	b := &Backend{Name: name, URL: "http://" + ln.Addr().String(), flaky: flaky, started: time.Now()}
	b.srv = &http.Server{Handler: b.handler(), ReadHeaderTimeout: 5 * time.Second}
	log.Info("demo backend listening", "name", name, "addr", ln.Addr().String(), "flaky", flaky)
	done := make(chan error, 1)
	go func() { done <- b.srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = b.srv.Shutdown(sctx)
	<-done
	return err
}

func (b *Backend) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if b.failing(time.Now()) {
			http.Error(w, "failing on purpose (demo)", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Backend", b.Name)
		fmt.Fprintf(w, "Hello from %s (%s)\nmethod=%s path=%s request_id=%s x_forwarded_for=%s\n",
			b.Name, b.URL, r.Method, r.URL.Path, r.Header.Get("X-Request-Id"), r.Header.Get("X-Forwarded-For"))
	})
	return mux
}

// failing reports whether a flaky backend is in the failing part of its
// cycle at now.
func (b *Backend) failing(now time.Time) bool {
	return b.flaky && now.Sub(b.started)%FlakyCycle >= FlakyCycle-FlakyDown
}
