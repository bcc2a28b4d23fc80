// Command proxy-server is an HTTP reverse proxy and load balancer.
//
// See README.md for the command line and docs/configuration.md for the
// config file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tbsphathuynh/proxy/internal/cli"
	"github.com/tbsphathuynh/proxy/internal/gctune"
)

func main() {
	gctune.Apply(os.Getenv, os.ReadFile)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("proxy-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o cli.Options
	fs.StringVar(&o.ConfigPath, "config", "config.yaml", "config file (YAML)")
	fs.BoolVar(&o.Demo, "demo", false, "start three demo backends on loopback and the proxy in front of them")
	fs.StringVar(&o.Listen, "listen", "", "address to listen on, e.g. :8080; takes precedence over the config file's listen (demo: default 127.0.0.1:8080)")
	fs.StringVar(&o.Admin, "admin", "", "admin listener address; takes precedence over the config file's admin.listen (demo: default 127.0.0.1:9901)")
	fs.Var(&o.To, "to", "quick mode: a server URL (repeat for more)")
	fs.StringVar(&o.Strategy, "strategy", "round_robin", "quick mode: load balancing strategy")
	fs.StringVar(&o.DemoBackend, "demo-backend", "", "run one demo backend on this address, e.g. :9001 (deploy/compose.yaml's backends)")
	fs.StringVar(&o.DemoName, "demo-name", "backend", "demo backend: the name it answers with")
	fs.BoolVar(&o.DemoFlaky, "demo-flaky", false, "demo backend: fail the health check 20s of every minute")
	fs.BoolVar(&o.Validate, "validate", false, "check the config file and exit")
	fs.BoolVar(&o.Version, "version", false, "print the version and exit")
	// -h prints the whole help to stdout and succeeds; a mistake in the
	// flags gets flag's own message and a pointer to -h.
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			cli.Usage(stdout, fs)
			return 0
		}
		fmt.Fprintln(stderr, "run proxy-server -h for help")
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "proxy-server: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	return cli.Run(ctx, o, stdout, stderr)
}
