// Package cli turns the command line into a running proxy: the config
// file, quick mode, demo mode, -validate and -version.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	stdlog "log"
	"log/slog"
	"runtime"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/demo"
	"github.com/tbsphathuynh/proxy/ratelimit"
	"github.com/tbsphathuynh/proxy/server"
)

// Version and Commit are stamped at build time by `make dist`
// (-ldflags "-X .../internal/cli.Version=v1.2.3"); when they are not, the
// go command's record of the build fills them in (see buildVersion).
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
		cfg, err := loadFile(o)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		// Warnings go with errors, one per line as a compiler writes
		// them, and do not fail the check.
		for _, w := range cfg.Warnings {
			fmt.Fprintln(stderr, w)
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
	case len(o.To) > 0:
		cfg, err := quickConfig(o)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		return serve(ctx, cfg, "", nil, stderr)
	}
	cfg, err := loadFile(o)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return serve(ctx, cfg, o.ConfigPath, o.overrides(), stderr)
}

// overrides are the flags that take precedence over the config file, on
// start and on every reload.
func (o Options) overrides() []config.Override {
	var ov []config.Override
	if o.Listen != "" {
		ov = append(ov, config.Override{Key: "listen", Value: o.Listen, Source: "-listen"})
	}
	if o.Admin != "" {
		ov = append(ov, config.Override{Key: "admin.listen", Value: o.Admin, Source: "-admin"})
	}
	return ov
}

// loadFile loads -config with the flags that override it. A missing file
// at the default path is most likely a first try, so the message says what
// else there is.
func loadFile(o Options) (*config.Config, error) {
	cfg, err := config.LoadWith(o.ConfigPath, o.overrides()...)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w\n(give -config FILE, or -to URL to proxy without a file; -h for help)", err)
	}
	return cfg, err
}

func serve(ctx context.Context, cfg *config.Config, path string, overrides []config.Override, stderr io.Writer) int {
	log, level := server.NewLogger(cfg.Logging, stderr)
	stdlog.SetFlags(0)
	stdlog.SetOutput(server.StdLogWriter(log))
	redis.SetLogger(ratelimit.RedisLogger(log))
	version, commit := buildVersion()
	opts := server.Options{ConfigPath: path, Overrides: overrides, Logger: log, LogLevel: level, Version: version, Commit: commit}
	if err := server.Run(ctx, cfg, opts); err != nil {
		log.Error("proxy stopped", "err", err)
		return 1
	}
	return 0
}

// quickConfig builds a config from -listen, -to and -strategy, through the
// same parser and validation as a file, so quick mode cannot accept what a
// file would not. Its errors name the flag, not a line of a file the user
// never saw.
func quickConfig(o Options) (*config.Config, error) {
	var b strings.Builder
	// from[i] is the flag behind line i of the generated file.
	from := []string{"", ""}
	b.WriteString("servers:\n")
	for _, u := range o.To {
		fmt.Fprintf(&b, "  - url: %q\n", u)
		from = append(from, "-to "+u)
	}
	ov := append(o.overrides(), config.Override{Key: "load_balancing.strategy", Value: o.Strategy, Source: "-strategy"})
	cfg, err := config.ParseWith("command line", []byte(b.String()), ov...)
	var list config.ErrorList
	if !errors.As(err, &list) {
		return cfg, err
	}
	for i, e := range list {
		if e.Line <= 0 || e.Line >= len(from) || from[e.Line] == "" {
			continue
		}
		// "servers[0].url: "x" needs a scheme" becomes
		// "-to x: needs a scheme".
		_, msg, _ := strings.Cut(e.Msg, ": ")
		_, value, _ := strings.Cut(from[e.Line], " ")
		msg = strings.TrimPrefix(msg, strconv.Quote(value)+" ")
		list[i] = &config.Error{Msg: from[e.Line] + ": " + msg, Warning: e.Warning}
	}
	return nil, list
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
	return serve(ctx, cfg, "", nil, stderr)
}

func versionString() string {
	version, commit := buildVersion()
	return fmt.Sprintf("proxy-server %s commit %s %s %s/%s", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
