//go:build !unix

package localfault

// ReserveSize is the size of reserve this process should hold.
func ReserveSize() int { return maxReserve }
