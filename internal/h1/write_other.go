//go:build !unix

package h1

// rawWriter is empty here: writes go through rwc.Write.
//
//lint:ignore U1000 conn embeds it on every platform; only unix's has fields to use.
type rawWriter struct{}

func (c *conn) initWriter()                 {}
func (c *conn) write(p []byte) (int, error) { return c.rwc.Write(p) }
