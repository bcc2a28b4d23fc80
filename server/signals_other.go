//go:build !unix

package server

import "os"

// reopenSignals is empty where SIGUSR1 does not exist; log files are then
// rotated by restarting or reloading.
var reopenSignals []os.Signal
