//go:build unix

package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
)

func TestSendReachesTheSocketInNotifySocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	n := FromEnv(func(k string) string {
		if k == "NOTIFY_SOCKET" {
			return path
		}
		return ""
	})
	if err := n.Send(Ready + "\nSTATUS=serving"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	k, err := ln.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(buf[:k]), "READY=1\nSTATUS=serving"; got != want {
		t.Errorf("datagram %q, want %q", got, want)
	}
}

func TestNoSocketSendsNothing(t *testing.T) {
	n := FromEnv(func(string) string { return "" })
	if n != nil {
		t.Fatalf("FromEnv without NOTIFY_SOCKET = %v, want nil", n)
	}
	if err := n.Send(Ready); err != nil {
		t.Errorf("nil notifier: %v", err)
	}
}

func TestUnreachableSocketErrs(t *testing.T) {
	n := FromEnv(func(string) string { return filepath.Join(t.TempDir(), "absent") })
	if err := n.Send(Ready); err == nil {
		t.Error("send to a missing socket succeeded")
	}
}
