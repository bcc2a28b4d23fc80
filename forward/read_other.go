//go:build !unix

package forward

// rawReader is empty here: reads go through Conn.Read.
//
//lint:ignore U1000 pconn embeds it on every platform; only unix's has fields to use.
type rawReader struct{}

// useRaw does nothing here: readBusy reads a socket through its file
// descriptor on unix only.
func (pc *pconn) useRaw() {}

// readBusy reads as Conn.Read does.
func (pc *pconn) readBusy(p []byte) (int, error) { return pc.Conn.Read(p) }
