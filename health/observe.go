package health

import (
	"context"
	"errors"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
)

// FailureLatency is the response time recorded for a failed attempt. A
// refused connection fails in microseconds; recorded as is, it would make a
// dead server look like the fastest one to least_latency.
const FailureLatency = time.Second

// Observe records the outcome of one attempt on s, with the signature of
// the forwarder's Observer hook: status is the response code (0 when
// err != nil), d the time to the response headers. It feeds the latency
// EWMA and Report. A request the client gave up on (context.Canceled) says
// nothing about the server and is ignored. On the success path it takes no
// lock and allocates nothing.
func (p *Passive) Observe(s *upstream.Server, status int, err error, d time.Duration) {
	now := time.Now()
	if err != nil && errors.Is(err, context.Canceled) {
		return
	}
	failed := err != nil || (p.cfg.On5xx && status >= 500)
	if failed {
		d = max(d, FailureLatency)
	}
	s.ObserveLatencyAt(d, now)
	p.Report(s, failed, now)
}
