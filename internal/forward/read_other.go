//go:build !unix

package forward

// rawIO is empty here: reads and writes go through Conn.
//
//lint:ignore U1000 pconn embeds it on every platform; only unix's has fields to use.
type rawIO struct{}

// useRaw does nothing here: readBusy reads a socket through its file
// descriptor on unix only.
func (pc *pconn) useRaw() {}

// readBusy reads as Conn.Read does.
func (pc *pconn) readBusy(p []byte) (int, error) { return pc.Conn.Read(p) }
