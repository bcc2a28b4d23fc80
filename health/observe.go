package health

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/tbsphathuynh/proxy/internal/localfault"
	"github.com/tbsphathuynh/proxy/upstream"
)

// FailureLatency is the response time recorded for a failed attempt. A
// refused connection fails in microseconds; recorded as is, it would make a
// dead server look like the fastest one to least_latency.
const FailureLatency = time.Second

// Observe records the outcome of one attempt on s, with the signature of
// the forwarder's Observer hook: status is the response code (0 when
// err != nil), d the time to the response headers. It feeds the latency
// EWMA and Report.
//
// Passive health blames a server only for what plainly is its own doing:
// a connection that could not be made (refused, unreachable, timed out)
// or that was closed or reset before any answer, and a 5xx answer when
// On5xx is set. A request the client gave up on (context.Canceled) and an
// error of the proxy's own resources (out of descriptors, buffers or
// ports) say nothing about the server and are ignored. Other errors, such
// as no answer within the response timeout or a malformed one, neither
// count nor end a run: a server can be slow for one request and fine for
// the next, and the circuit breaker, which counts every failed exchange,
// is the tool for those. On the success path Observe takes no lock and
// allocates nothing.
func (p *Passive) Observe(s *upstream.Server, status int, err error, d time.Duration) {
	now := time.Now()
	if err == nil {
		s.ObserveLatencyAt(d, now)
		p.Report(s, p.cfg.On5xx && status >= 500, now)
		return
	}
	if errors.Is(err, context.Canceled) || localFault(err) {
		return
	}
	s.ObserveLatencyAt(max(d, FailureLatency), now)
	if connectionFailure(err) {
		p.Report(s, true, now)
	}
}

// connectionFailure reports whether err, from an attempt that got no
// answer, says the server could not be reached: no connection could be
// made, or the connection was closed or reset before any answer. It is
// false for errors of the proxy's own resources (localFault).
func connectionFailure(err error) bool {
	if err == nil || localFault(err) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true // refused, unreachable, no such host, connect timeout
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		closedBeforeAnswer(err)
}

// closedBeforeAnswer reports net/http's error for a connection the server
// closed before sending a byte. The transport returns it bare, and its
// variable (errServerClosedIdle) is unexported, so only its text tells it.
func closedBeforeAnswer(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == "http: server closed idle connection" {
			return true
		}
	}
	return false
}

// localFault reports whether err comes from the proxy's own resources
// rather than from a server: out of file descriptors, of buffer space or
// memory, or of local ports to connect from. Such an error must never be
// held against a server. The classification is localfault's, shared with
// the forwarder, the active checks and the listeners.
func localFault(err error) bool { return localfault.Is(err) }
