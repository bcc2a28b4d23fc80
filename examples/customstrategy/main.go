// Command customstrategy is a custom build of the proxy with a strategy of
// its own: "first_available" sends every request to the first available
// server in config order, so the others serve only as spares.
//
//	go run ./examples/customstrategy -config my.yaml   # with strategy: first_available
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/tbsphathuynh/proxy/balancer"
	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/server"
	"github.com/tbsphathuynh/proxy/upstream"
)

// FirstAvailable picks the first server of the snapshot.
type FirstAvailable struct{}

// Pick implements balancer.Policy.
func (FirstAvailable) Pick(servers []*upstream.Server, _ *http.Request) *upstream.Server {
	return servers[0]
}

func init() {
	server.RegisterStrategy("first_available", func(balancer.Options) (balancer.Policy, error) {
		return FirstAvailable{}, nil
	})
}

func main() {
	path := flag.String("config", "config.yaml", "config file")
	flag.Parse()
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log, level := server.NewLogger(cfg.Logging, os.Stderr)
	if err := server.Run(ctx, cfg, server.Options{ConfigPath: *path, Logger: log, LogLevel: level}); err != nil {
		log.Error("proxy stopped", "err", err)
		os.Exit(1)
	}
}
