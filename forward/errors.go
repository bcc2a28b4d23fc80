package forward

import (
	"context"
	"errors"
	"net"
	"net/http"
	"syscall"
)

// Sentinel causes of answers the proxy makes itself.
var (
	// ErrNoServer means no server of the upstream could take the request.
	ErrNoServer = errors.New("no server available")
	// ErrNoRoute means no route matched and there is no default upstream.
	ErrNoRoute = errors.New("no route")

	errPerTryTimeout = timeoutError("per-try timeout awaiting response headers")
)

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
	case errors.Is(err, ErrNoServer):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrNoRoute):
		return http.StatusNotFound
	case errors.Is(err, context.Canceled):
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
