package server

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the package starts ends with its request, connection
// or server: none is left once the tests are done. Left aside are
// goroutines the ACME parts keep for the process by design, one per
// thing rather than per reload: Pebble's validation queue (a test CA that
// is never stopped), certmagic's rate limiter of each CA account, and its
// lock-file refresher, which notices a released lock at its next tick.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/letsencrypt/pebble/v2/va.VAImpl.processTasks"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.(*RingBufferRateLimiter).loop"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"),
	)
}
