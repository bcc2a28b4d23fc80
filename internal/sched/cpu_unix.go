//go:build unix

package sched

import (
	"syscall"
	"time"
)

// cpuTime is the process's user and system CPU time (getrusage(2)).
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
