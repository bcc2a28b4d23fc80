//go:build !unix

package sched

import "time"

// cpuTime cannot be read here: the scheduler is never busy, and reads
// park as the poller has them.
func cpuTime() (time.Duration, bool) { return 0, false }
