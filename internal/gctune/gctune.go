// Package gctune chooses the garbage collector's settings for the proxy.
//
// Under load the proxy's live heap is small (about 2 MB in the peer
// benchmark) and nearly all it allocates is per-request garbage. With Go's
// default GOGC=100 the heap goal is then ~5 MB and the collector runs 15
// times a second, about 3% of the CPU; at GOGC=200 it takes about 1% for a
// heap goal of ~8 MB. Above that the saving is within noise, while a proxy
// holding many idle connections (a large live heap) would keep
// proportionally more freed memory resident. See docs/performance.md.
//
// In a container, a soft memory limit just under the cgroup's lets the
// collector work harder before the kernel kills the process, instead of
// after.
//
// After a burst, once every server is quiet, the memory the burst freed
// goes back to the system (Busy, Quiet, trim.go).
package gctune

import (
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultPercent is the GOGC the proxy runs with unless GOGC is set.
const DefaultPercent = 200

// limitShare is the share of a cgroup memory limit given to the Go
// runtime as its soft limit; the rest is left for what the runtime does
// not count (thread stacks of cgo, the kernel's socket buffers are not in
// it anyway) and for headroom.
const limitShare = 0.9

// cgroupFiles hold a container's memory limit: cgroup v2, then v1.
var cgroupFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// Settings are what Apply chose; zero fields were left alone.
type Settings struct {
	// GCPercent is the GOGC set, 0 when GOGC came from the environment.
	GCPercent int
	// MemoryLimit is the soft limit in bytes, 0 when none was set.
	MemoryLimit int64
}

// Apply sets the collector's pace and memory limit, leaving alone what
// the environment sets (GOGC, GOMEMLIMIT) so operators keep the last word.
// getenv and readFile are os.Getenv and os.ReadFile outside tests. Call it
// once, first thing in main.
func Apply(getenv func(string) string, readFile func(string) ([]byte, error)) Settings {
	var s Settings
	if getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultPercent)
		s.GCPercent = DefaultPercent
	}
	if getenv("GOMEMLIMIT") == "" {
		if limit := cgroupLimit(readFile); limit > 0 {
			s.MemoryLimit = int64(float64(limit) * limitShare)
			debug.SetMemoryLimit(s.MemoryLimit)
		}
	}
	return s
}

// cgroupLimit is the container's memory limit in bytes, or 0 when there
// is none.
func cgroupLimit(readFile func(string) ([]byte, error)) int64 {
	for _, f := range cgroupFiles {
		b, err := readFile(f)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		n, err := strconv.ParseInt(v, 10, 64)
		// "max" (v2) or a page-rounded huge number (v1) mean no limit.
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0
		}
		return n
	}
	return 0
}
