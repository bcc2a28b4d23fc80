//go:build !unix

package h1

// socketHolds reports whether c's socket holds bytes not read yet; the
// fast path, and so c, exists on unix only.
func socketHolds(c *conn) bool { return true }
