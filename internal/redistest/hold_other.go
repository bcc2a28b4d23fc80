//go:build !unix

package redistest

// holdPort, where a socket cannot be held bound without listening, probes
// a free port and lets it go at once: another process may then take it
// before redis-server binds it, which waitReady's identity check catches.
func holdPort() (port int, release func(), err error) {
	port, err = freePort()
	return port, func() {}, err
}
