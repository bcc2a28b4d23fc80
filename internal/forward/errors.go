package forward

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/tbsphathuynh/proxy/internal/localfault"
)

// Sentinel causes of answers the proxy makes itself.
var (
	// ErrNoServer means no server of the upstream could take the request.
	ErrNoServer = errors.New("no server available")
	// ErrNoRoute means no route matched and there is no default upstream.
	ErrNoRoute = errors.New("no route")

	errPerTryTimeout = timeoutError("per-try timeout awaiting response headers")

	// errTransportCanceled is an exchange the transport reported canceled
	// while the client was still there and no per-try timeout had fired:
	// a failure to reach the server, not the client leaving.
	errTransportCanceled = errors.New("the transport canceled the exchange")

	// errClientBody marks an error that came from reading the client's
	// request body: the client's fault, never the server's (see
	// clientBodyError).
	errClientBody = errors.New("forward: reading the client's request body")
)

// clientBodyError is a failure to read the client's request body: bad
// chunked framing, a body cut short, the connection lost or too slow. It
// is classified where the read fails (guardedBody), so that whatever the
// transport wraps it in, StatusFor answers for the client (400, 408, 499),
// and the attempt is neither retried nor held against the server by
// passive health, the breaker or the latency average.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string {
	return "forward: reading the client's request body: " + e.err.Error()
}
func (e *clientBodyError) Unwrap() error        { return e.err }
func (e *clientBodyError) Is(target error) bool { return target == errClientBody }

// clientFault reports whether err is the client's doing rather than the
// server's: the client went away (context.Canceled) or its request body
// could not be read. Such an attempt says nothing about the server.
func clientFault(err error) bool {
	return errors.Is(err, errClientBody) || errors.Is(err, context.Canceled) && !errors.Is(err, errTransportCanceled)
}

// blameless reports whether a failed attempt says nothing about the
// server it was for: the client's fault (clientFault), or the proxy's own
// resources ran out (localfault: descriptors, buffers, ephemeral ports).
// Such an attempt reaches neither passive health, the breaker nor the
// latency average, and is not retried on another server.
func blameless(err error) bool {
	return clientFault(err) || errors.Is(err, localfault.ErrLocal)
}

// clientBodyStatus is the status for a request body that could not be
// read, as nginx answers one: 408 when the client was too slow, 499 when
// its connection broke (nobody reads an answer), else 400: the body's
// framing was invalid, or it ended before its length (RFC 9112 §8: an
// incomplete message).
func clientBodyStatus(err error) int {
	var ne net.Error
	switch {
	case errors.As(err, new(*http.MaxBytesError)):
		// A body longer than a route's max_body (package policy).
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest
	case errors.As(err, &ne) && ne.Timeout():
		return http.StatusRequestTimeout
	case errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, context.Canceled):
		return 499
	case errors.As(err, new(*net.OpError)):
		return 499
	}
	return http.StatusBadRequest
}

// modifyResponseError is an error a ModifyResponse hook returned: the
// answer it was given is dropped, as a server's broken one would be.
type modifyResponseError struct{ err error }

func (e *modifyResponseError) Error() string { return "modify response: " + e.err.Error() }
func (e *modifyResponseError) Unwrap() error { return e.err }

// timeoutError is a net.Error that says it timed out, so StatusFor maps it
// to 504.
type timeoutError string

func (e timeoutError) Error() string   { return string(e) }
func (e timeoutError) Timeout() bool   { return true }
func (e timeoutError) Temporary() bool { return true }

// StatusFor maps the error of a failed exchange with a server to the status
// the client gets. It is the only place that decides this.
func StatusFor(err error) int {
	var ne net.Error
	switch {
	case errors.As(err, new(*modifyResponseError)):
		return http.StatusBadGateway
	case errors.Is(err, ErrNoServer):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrNoRoute):
		return http.StatusNotFound
	case errors.Is(err, localfault.ErrLocal):
		// The proxy cannot take the request now (out of descriptors or
		// ports): unavailable, as when no server is, not a bad gateway.
		return http.StatusServiceUnavailable
	case errors.Is(err, errClientBody):
		// Before the server's own errors: the transport reports a body it
		// could not read as its failure to send the request.
		return clientBodyStatus(err)
	case errors.Is(err, context.Canceled) && !errors.Is(err, errTransportCanceled):
		// nginx's 499: the client went away before the answer. Nobody reads
		// it, but the access log and metrics show what happened.
		return 499
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		return http.StatusGatewayTimeout
	case errors.As(err, &ne) && ne.Timeout():
		return http.StatusGatewayTimeout
	default:
		return http.StatusBadGateway
	}
}

// bodyFor is the short text the client gets with a status the proxy made.
// It names the cause without any detail of the error, which only the log
// sees.
func bodyFor(status int) string {
	switch status {
	case http.StatusServiceUnavailable:
		return "503 Service Unavailable: no server is available to handle this request\n"
	case http.StatusGatewayTimeout:
		return "504 Gateway Timeout: the server did not answer in time\n"
	case http.StatusNotFound:
		return "404 Not Found: no route matches this request\n"
	case http.StatusBadRequest:
		return "400 Bad Request: the request body is malformed or incomplete\n"
	case http.StatusRequestTimeout:
		return "408 Request Timeout: the request body did not arrive in time\n"
	default:
		return "502 Bad Gateway: the server could not be reached or sent an invalid response\n"
	}
}

// WriteError answers the client with the status for err and a short body.
// retryAfter is sent with 503 answers when not empty.
func WriteError(w http.ResponseWriter, err error, retryAfter string) int {
	status := StatusFor(err)
	if status == 499 {
		return status
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if status == http.StatusServiceUnavailable && retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	if errors.Is(err, errClientBody) {
		// The rest of the body cannot be found, so neither can the next
		// request on the connection (RFC 9112 §9.6).
		h.Set("Connection", "close")
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(bodyFor(status)))
	return status
}

// isDialError reports whether err happened before any byte of the request
// reached a server, so trying another server cannot do anything twice.
func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}
