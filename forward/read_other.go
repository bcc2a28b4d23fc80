//go:build !unix

package forward

// useRaw does nothing here: readBusy reads a socket through its file
// descriptor on unix only.
func (pc *pconn) useRaw() {}

// readBusy reads as Conn.Read does.
func (pc *pconn) readBusy(p []byte) (int, error) { return pc.Conn.Read(p) }
