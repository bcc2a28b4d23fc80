//go:build !unix

package server

// setReusePort is a no-op where SO_REUSEPORT does not exist: a reload that
// must replace the main listener on the same port then fails and keeps the
// old one, rather than dropping connections.
func setReusePort(uintptr) error { return nil }
