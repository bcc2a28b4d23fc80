package loadtest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/server"
)

// TestServe runs the proxy from the config file in $PROXY_SERVE_CONFIG
// until SIGTERM or SIGINT, with net/http/pprof on $PROXY_PPROF (default
// 127.0.0.1:9901), so a CPU or allocation profile can be taken while wrk
// or the peer harness loads it:
//
//	go test -c -o /tmp/serve.test ./internal/loadtest
//	PROXY_SERVE_CONFIG=/tmp/bench.yaml /tmp/serve.test -test.run '^TestServe$'
//	go tool pprof -seconds 10 http://127.0.0.1:9901/debug/pprof/profile
//
// It profiles the same server.Run that main calls, without depending on
// how the admin listener is wired.
func TestServe(t *testing.T) {
	path := os.Getenv("PROXY_SERVE_CONFIG")
	if path == "" {
		t.Skip("set PROXY_SERVE_CONFIG to a config file to serve it")
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	addr := os.Getenv("PROXY_PPROF")
	if addr == "" {
		addr = "127.0.0.1:9901"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ps := &http.Server{Handler: mux}
	go ps.Serve(ln)
	defer ps.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log, level := server.NewLogger(cfg.Logging, os.Stderr)
	err = server.Run(ctx, cfg, server.Options{ConfigPath: path, Logger: log, LogLevel: level})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	slog.Default().Info("served", "config", path)
}
