package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/tbsphathuynh/proxy/balancer"
)

// Usage writes the help -h shows: how to run the proxy, examples, the
// flags, the strategies this binary has, and where the documentation is.
func Usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `proxy-server: an HTTP reverse proxy and load balancer.

Usage:
  proxy-server [-config FILE] [-listen ADDR] [-admin ADDR]
        serve what FILE (default config.yaml) describes; -listen and -admin
        take precedence over the file's listen and admin.listen
  proxy-server -validate [-config FILE]
        check FILE as the proxy would load it, certificates included:
        FILE:LINE:COL: message lines and exit 1, or exit 0 (warnings
        print as FILE:LINE:COL: warning: message)
  proxy-server -to URL [-to URL ...] [-listen ADDR] [-strategy NAME]
        quick mode: proxy to these servers with no config file
  proxy-server -demo
        three demo backends on loopback and the proxy in front of them
  proxy-server -version

Examples:
  proxy-server -config /etc/proxy/config.yaml
  proxy-server -validate -config config.yaml
  proxy-server -listen :8080 -to http://127.0.0.1:9001 -to http://127.0.0.1:9002 -strategy least_connections
  proxy-server -demo

Flags:
`)
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
	fmt.Fprintf(w, `
Strategies (-strategy, load_balancing.strategy):
  %s

Signals: SIGHUP reloads the config file, SIGUSR1 reopens the access log,
SIGTERM and SIGINT drain in-flight requests and stop.

Documentation: README.md and docs/ (configuration.md, load-balancing.md,
operations.md) in the source, also at https://github.com/tbsphathuynh/proxy
`, strings.Join(balancer.Names(), ", "))
}
