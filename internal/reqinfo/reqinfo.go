// Package reqinfo carries one request's record between the middleware that
// logs it and the forwarder that fills it in.
package reqinfo

import (
	"context"
	"net/http"
	"net/textproto"
	"sync/atomic"
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
	// RequestBytes is how much of the request's body the forwarder read
	// from the client, counted once however many tries sent it.
	RequestBytes int64
	// Affinity, when set by a sticky policy, is the AffinityID of the
	// server the client was on: the forwarder picks it while it is usable.
	Affinity string
	// GRPC is set for a gRPC call, and GRPCStatus is then the status that
	// ended it (the server's, or the proxy's own), -1 when none did.
	GRPC       bool
	GRPCStatus int
	// Fallback is set when a route's fallback answered.
	Fallback bool
	// Request is the request as the client sent it, kept for a fallback
	// upstream when the route has one.
	Request *http.Request
	// Err is the cause of an answer the proxy made itself, for the log only:
	// it never reaches the client.
	Err error
	// Informational relays the informational answers (103 Early Hints)
	// of the exchange under way to the client. The forwarder's own
	// upstream client finds it here; on the way through http.Transport it
	// becomes a client trace in the outgoing request's context. Kept here
	// rather than as a trace, it costs no allocation per request.
	Informational Informational
	// Held is set when a goroutine other than the request's own may still
	// hold the outgoing request or its answer once the request is served:
	// http.Transport's, after an attempt that went through it, or a
	// rescue by the forwarder's own client, saving a connection an
	// exchange left midway. Their memory (header maps, the head, the
	// outgoing request, the answer) is then left to the collector rather
	// than reused.
	Held bool
	// Head is the outgoing request's head, written to servers as it is
	// rather than from the outgoing request, whose header is then nil: the
	// direct lane's (see forward.Route.ServeDirect).
	Head []byte
}

// Informational receives an informational (1xx) answer of a server.
type Informational interface {
	Got1xx(code int, header textproto.MIMEHeader) error
}

type key struct{}

// Slot holds the record of a request being served on a connection, put
// into the connection's context by WithSlot. With then stores a request's
// record in the slot instead of making a new context, and the request
// carrying it: two allocations and a copy of the request fewer per
// request. A connection serving several requests at once (HTTP/2) shares
// its slot with the first of them; the others get contexts of their own.
type Slot struct{ info atomic.Pointer[Info] }

// WithSlot returns ctx with an empty slot, for the context of a new
// connection (http.Server.ConnContext).
func WithSlot(ctx context.Context) context.Context {
	return context.WithValue(ctx, key{}, new(Slot))
}

// With returns a context carrying info: ctx itself when info went into the
// empty slot of ctx's connection, which it holds until Release.
func With(ctx context.Context, info *Info) context.Context {
	if s, ok := ctx.Value(key{}).(*Slot); ok && s.info.CompareAndSwap(nil, info) {
		return ctx
	}
	return context.WithValue(ctx, key{}, info)
}

// Release frees the slot of ctx's connection if With put info there. Call
// it when the request is served, before info is reused.
func Release(ctx context.Context, info *Info) {
	if s, ok := ctx.Value(key{}).(*Slot); ok {
		s.info.CompareAndSwap(info, nil)
	}
}

// From returns the Info in ctx, or nil.
func From(ctx context.Context) *Info {
	switch v := ctx.Value(key{}).(type) {
	case *Info:
		return v
	case *Slot:
		return v.info.Load()
	}
	return nil
}
