//go:build unix

package forward

// Write writes p to the server as Conn.Write does, with the same errors,
// through the file descriptor when readBusy reads through it
// (sysio.Write saves the scheduler's system-call bookkeeping). Unlike
// Conn.Write it is not safe for concurrent use; only the exchange writes.
func (pc *pconn) Write(p []byte) (int, error) {
	if pc.raw == nil {
		return pc.Conn.Write(p)
	}
	return pc.w.Write(p)
}
