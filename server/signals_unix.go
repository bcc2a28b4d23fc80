//go:build unix

package server

import (
	"os"
	"syscall"
)

// reopenSignals reopen access log files (logrotate's convention).
var reopenSignals = []os.Signal{syscall.SIGUSR1}
