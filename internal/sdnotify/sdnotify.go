// Package sdnotify tells systemd the service's state through the datagram
// socket named in $NOTIFY_SOCKET (the protocol of sd_notify(3)), so a unit
// with Type=notify counts the proxy started only once its listeners
// accept, and shows reloads and draining as they happen. It is a few lines
// of our own rather than a dependency: the protocol is one datagram of
// NAME=VALUE lines.
package sdnotify

import (
	"errors"
	"net"
)

// The states the proxy sends (sd_notify(3)).
const (
	Ready     = "READY=1"
	Reloading = "RELOADING=1"
	Stopping  = "STOPPING=1"
)

// Notifier sends states to one socket. A nil *Notifier sends nothing, so
// callers need not check whether systemd is listening.
type Notifier struct {
	addr *net.UnixAddr
}

// FromEnv returns a Notifier for the socket named by NOTIFY_SOCKET, or nil
// when the variable is unset or empty (not started by systemd, or by a
// unit that is not Type=notify).
func FromEnv(getenv func(string) string) *Notifier {
	name := getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	// A leading '@' names a socket in Linux's abstract namespace; the net
	// package turns it into the leading NUL the kernel expects.
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
}

// Send sends state, one or more NAME=VALUE lines, as one datagram.
func (n *Notifier) Send(state string) error {
	if n == nil {
		return nil
	}
	if state == "" {
		return errors.New("sdnotify: empty state")
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}
