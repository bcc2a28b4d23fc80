// Package reqinfo carries one request's record between the middleware that
// logs it and the forwarder that fills it in.
package reqinfo

import (
	"context"
	"net/http"
	"net/http/httptrace"
	"time"
)

// Info is what the access log and metrics learn about a request after it is
// served. The forwarder fills in the routing fields.
type Info struct {
	Start     time.Time
	RequestID string
	Route     string
	Upstream  string
	Server    string
	Retries   int
	// Fallback is set when a route's fallback answered.
	Fallback bool
	// Request is the request as the client sent it, kept for a fallback
	// upstream when the route has one.
	Request *http.Request
	// Err is the cause of an answer the proxy made itself, for the log only:
	// it never reaches the client.
	Err error
	// Trace is the forwarder's client trace of the exchange under way,
	// which relays informational answers (103 Early Hints). The
	// forwarder's own upstream client finds it here; the outgoing request
	// carries it in its context only on its way through http.Transport,
	// which saves two allocations per request on the common path.
	Trace *httptrace.ClientTrace
	// Transported is set once an attempt went through http.Transport,
	// which may hold on to the outgoing request after it returns.
	Transported bool
}

type key struct{}

// With returns ctx carrying info.
func With(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, key{}, info)
}

// From returns the Info in ctx, or nil.
func From(ctx context.Context) *Info {
	info, _ := ctx.Value(key{}).(*Info)
	return info
}
