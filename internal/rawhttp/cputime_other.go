//go:build !unix

package rawhttp

import "time"

// cpuTimes reports nothing where getrusage is missing: the benchmarks'
// CPU figures read 0 there.
func cpuTimes() (user, sys time.Duration) { return 0, 0 }
