package upstream

import "strconv"

// AffinityID is the opaque name a sticky-session cookie gives a server of
// an upstream: stable across reloads and restarts for the same upstream
// and server names, and saying nothing of the server's address.
func AffinityID(upstream, server string) string {
	return strconv.FormatUint(affinityHash(upstream, server), 36)
}

// affinityHash is FNV-1a over upstream, a NUL and server, written out so
// that it allocates nothing.
func affinityHash(upstream, server string) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := range len(upstream) {
		h = (h ^ uint64(upstream[i])) * prime
	}
	h *= prime // the NUL between the names
	for i := range len(server) {
		h = (h ^ uint64(server[i])) * prime
	}
	return h
}

// AffinityHash is the number AffinityID writes in base 36.
func AffinityHash(upstream, server string) uint64 { return affinityHash(upstream, server) }
