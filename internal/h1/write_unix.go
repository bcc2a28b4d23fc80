//go:build unix

package h1

import "github.com/tbsphathuynh/proxy/internal/sysio"

// rawWriter writes to the client through the file descriptor.
type rawWriter struct{ writer sysio.Writer }

func (c *conn) initWriter() { c.writer.Init(c.rwc, c.raw) }

// write writes p to the client as rwc.Write does, with the same errors,
// through the file descriptor (sysio.Write saves the scheduler's
// system-call bookkeeping on each of a request's writes). Unlike
// rwc.Write it is not safe for concurrent use.
func (c *conn) write(p []byte) (int, error) { return c.writer.Write(p) }
