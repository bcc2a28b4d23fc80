package admin

import (
	"embed"
	"fmt"
	"net"
	"strings"
)

// uiFiles is the dashboard: plain HTML, JS and CSS, no build step, nothing
// fetched from elsewhere at run time.
//
//go:embed ui
var uiFiles embed.FS

// IsLoopback reports whether addr, a listen address such as
// "127.0.0.1:9901" or "[::1]:9901", accepts connections from this machine
// only. An empty host (":9901") listens on every interface, and a host
// name other than "localhost" may resolve to anything, so both count as
// not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckListen refuses an admin listen address that is reachable from
// other machines when no token protects the POST endpoints: reload and
// drain would be open to the network. The server calls it at start-up and
// on reload before binding. An empty addr (admin listener off) passes.
func CheckListen(addr, token string) error {
	if addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("admin.listen %q: %w", addr, err)
	}
	if token == "" && !IsLoopback(addr) {
		return fmt.Errorf("admin.listen %q is not a loopback address: set admin.token (e.g. token: ${ADMIN_TOKEN}) or listen on 127.0.0.1", addr)
	}
	return nil
}
