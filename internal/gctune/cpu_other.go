//go:build !unix

package gctune

import "time"

// cpuKnown is false here: without the process's CPU time an idle process
// cannot be told from a busy one, and memory is not trimmed.
const cpuKnown = false

func processCPU() time.Duration { return 0 }
