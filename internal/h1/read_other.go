//go:build !unix

package h1

// The fast path reads a socket through its file descriptor; elsewhere
// every connection is served by net/http.
const fastPathSupported = false

func (c *conn) readSome(fd uintptr) bool { return true }

func (c *conn) readLate() bool { return false }
