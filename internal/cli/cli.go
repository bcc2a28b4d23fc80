// Package cli turns the command line into a running proxy: the config
// file, quick mode, demo mode, -validate and -version.
package cli

import (
	"context"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/demo"
	"github.com/tbsphathuynh/proxy/server"
)

// Version and Commit are stamped at build time by `make dist`
// (-ldflags "-X .../internal/cli.Version=v1.2.3"); Commit falls back to
// the VCS stamp of the build, when there is one.
var (
	Version = "dev"
	Commit  = ""
)

// Options are the parsed flags.
type Options struct {
	ConfigPath string
	Demo       bool
	Listen     string
	Admin      string
	To         URLs
	Strategy   string
	Validate   bool
	Version    bool
	// DemoBackend, when set, runs a single demo backend on this address,
	// named DemoName and failing part of the time if DemoFlaky.
	DemoBackend string
	DemoName    string
	DemoFlaky   bool
}

// URLs collects a repeated flag.
type URLs []string

func (u *URLs) String() string { return strings.Join(*u, ",") }

// Set implements flag.Value.
func (u *URLs) Set(v string) error { *u = append(*u, v); return nil }

// Run does what the options ask and returns the exit code.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) int {
	switch {
	case o.Version:
		fmt.Fprintln(stdout, versionString())
		return 0
	case o.Validate:
		if _, err := config.Load(o.ConfigPath); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok\n", o.ConfigPath)
		return 0
	case o.Demo:
		return runDemo(ctx, o, stdout, stderr)
	case o.DemoBackend != "":
		log := slog.New(slog.NewTextHandler(stderr, nil))
		if err := demo.Serve(ctx, log, o.DemoBackend, o.DemoName, o.DemoFlaky); err != nil {
			fmt.Fprintln(stderr, "demo backend:", err)
			return 1
		}
		return 0
	case o.Listen != "" || len(o.To) > 0:
		cfg, err := quickConfig(o)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		return serve(ctx, cfg, "", stderr)
	}
	cfg, err := config.Load(o.ConfigPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return serve(ctx, cfg, o.ConfigPath, stderr)
}

func serve(ctx context.Context, cfg *config.Config, path string, stderr io.Writer) int {
	log, level := server.NewLogger(cfg.Logging, stderr)
	stdlog.SetFlags(0)
	stdlog.SetOutput(server.StdLogWriter(log))
	if err := server.Run(ctx, cfg, server.Options{ConfigPath: path, Logger: log, LogLevel: level, Version: Version, Commit: Commit}); err != nil {
		log.Error("proxy stopped", "err", err)
		return 1
	}
	return 0
}

// quickConfig builds a config from -listen, -to and -strategy, through the
// same parser and validation as a file, so quick mode cannot accept what a
// file would not.
func quickConfig(o Options) (*config.Config, error) {
	if len(o.To) == 0 {
		return nil, fmt.Errorf("quick mode needs at least one -to URL")
	}
	listen := o.Listen
	if listen == "" {
		listen = ":8080"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\nload_balancing: {strategy: %q}\n", listen, o.Strategy)
	if o.Admin != "" {
		fmt.Fprintf(&b, "admin: {listen: %q}\n", o.Admin)
	}
	b.WriteString("servers:\n")
	for _, u := range o.To {
		fmt.Fprintf(&b, "  - url: %q\n", u)
	}
	return config.Parse("command line", []byte(b.String()))
}

func runDemo(ctx context.Context, o Options, stdout, stderr io.Writer) int {
	backends, stop, err := demo.Start(slog.New(slog.NewTextHandler(stderr, nil)), demo.Ports)
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	defer stop()
	if o.Listen == "" {
		o.Listen = "127.0.0.1:8080"
	}
	if o.Admin == "" {
		o.Admin = "127.0.0.1:9901"
	}
	o.To = nil
	for _, b := range backends {
		o.To = append(o.To, b.URL)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\nadmin: {listen: %q}\n", o.Listen, o.Admin)
	b.WriteString("health_checks: {interval: 2s, timeout: 1s, path: /health, healthy_threshold: 2, unhealthy_threshold: 2}\n")
	b.WriteString("servers:\n")
	for _, u := range o.To {
		fmt.Fprintf(&b, "  - url: %q\n", u)
	}
	cfg, err := config.Parse("demo", []byte(b.String()))
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	fmt.Fprintf(stdout, "demo: backends %s\n", o.To.String())
	fmt.Fprintf(stdout, "demo: %s fails its health check for %s of every %s: watch it leave the pool and rejoin\n",
		backends[len(backends)-1].Name, demo.FlakyDown, demo.FlakyCycle)
	fmt.Fprintf(stdout, "try:  curl -s http://%s/   (repeat it: each answer names the backend that served it)\n", o.Listen)
	fmt.Fprintf(stdout, "      dashboard: http://%s/   API: http://%s/api/upstreams\n", o.Admin, o.Admin)
	return serve(ctx, cfg, "", stderr)
}

func versionString() string {
	commit := Commit
	if bi, ok := debug.ReadBuildInfo(); ok && commit == "" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				commit = s.Value
			}
		}
	}
	if commit == "" {
		commit = "unknown"
	}
	return fmt.Sprintf("proxy-server %s commit %s %s %s/%s", Version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
