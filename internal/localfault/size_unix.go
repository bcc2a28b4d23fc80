//go:build unix

package localfault

import "syscall"

// ReserveSize is the size of reserve this process should hold: 16
// descriptors, or an eighth of its limit when that is lower, so that a
// tiny limit still leaves most descriptors to clients.
func ReserveSize() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 {
		return maxReserve
	}
	return int(min(uint64(maxReserve), max(lim.Cur/8, 1)))
}
