//go:build !unix

package forward

import "net"

// closedByPeer cannot look at the socket here; requests that may not be
// sent twice then take their chance on a kept-alive connection, as they
// would with net/http's transport between its check and the write.
func closedByPeer(net.Conn) bool { return false }
