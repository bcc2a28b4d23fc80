//go:build !unix

package forward

import "net"

// probeSupported is false where the client cannot look at an idle socket
// without reading it: NewTransport then registers no client of this
// package, and every request goes through http.Transport, whose reader
// goroutine watches each idle connection.
const probeSupported = false

func (pc *pconn) probe([]byte) (probeState, int) { return probeClosed, 0 }

func probeConn(net.Conn) bool { return false }
