package accesslog

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/tbsphathuynh/proxy/internal/grpcwire"
	"github.com/tbsphathuynh/proxy/internal/reqinfo"
	"github.com/tbsphathuynh/proxy/middleware"
)

// Observe is called once per request after it is served, with its record,
// final status and bytes sent; metrics hang off it. It may be nil.
type Observe func(info *reqinfo.Info, method string, status int, bytes int64, d time.Duration)

// Track gives every request an ID and a record that the forwarder fills in,
// and after the answer writes one access log line (unless log is nil) and
// calls observe (unless nil). The ID goes back to the client in
// X-Request-Id; the forwarder sends it on to servers from the record.
//
// The record and the response writer are pooled, and a new ID costs an
// allocation once every 64 requests. The record goes into the slot of the
// request's connection when it has one (reqinfo.WithSlot), else into a new
// context and request: two allocations.
func Track(log *AccessLog, observe Observe) middleware.Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ex := exchanges.Get().(*exchange)
			id := requestID(r)
			ex.info = reqinfo.Info{Start: time.Now(), RequestID: id[0]}
			ex.rw = responseWriter{ResponseWriter: w}
			w.Header()[RequestIDHeader] = id
			// A handler that aborts the response (http.ErrAbortHandler, a
			// server's body cut short) is still logged and counted.
			defer ex.finish(r, nil, nil, log, observe)

			if ctx := reqinfo.With(r.Context(), &ex.info); ctx != r.Context() {
				r = r.WithContext(ctx)
			}
			next.ServeHTTP(&ex.rw, r)
		})
	}
}

// finish logs and observes the exchange, then returns it to the pool. A
// request of the direct lane, which has no Host or URL path, has them in
// host and path, made strings only for a line that is written; other
// requests pass nil.
func (ex *exchange) finish(r *http.Request, host, path []byte, log *AccessLog, observe Observe) {
	d := time.Since(ex.info.Start)
	status := ex.status()
	if log != nil && log.sampled(status, &ex.info) {
		if host != nil {
			r.Host = string(host)
			if r.URL != nil {
				r.URL.Path = string(path)
			}
		}
		log.write(r, &ex.info, status, ex.rw.bytes, d)
	}
	if observe != nil {
		observe(&ex.info, r.Method, status, ex.rw.bytes, d)
	}
	reqinfo.Release(r.Context(), &ex.info)
	*ex = exchange{}
	exchanges.Put(ex)
}

// status is the exchange's status for logs and metrics: 499 when the
// client left before any answer.
func (ex *exchange) status() int {
	if ex.rw.status != 0 {
		return ex.rw.status
	}
	if ex.info.Err != nil {
		return 499
	}
	return http.StatusOK
}

// Tracked is a request of the direct lane (see h1.Direct), which has no
// http.Request, tracked as Track tracks one: a record with a new ID, a
// writer that sends the ID back and notes the answer's status and size,
// and at the end the access log line and the metrics.
type Tracked struct{ ex *exchange }

// Begin starts tracking a direct request: its record, with a new ID,
// before anything is answered. Then either Answer, and End once served,
// or Drop, when the request goes the usual way after all.
func Begin() Tracked {
	ex := exchanges.Get().(*exchange)
	ex.info = reqinfo.Info{Start: time.Now()}
	ex.id = newIDValue()
	ex.info.RequestID = ex.id[0]
	return Tracked{ex}
}

// Info is the request's record.
func (t Tracked) Info() *reqinfo.Info { return &t.ex.info }

// KeepID makes id, the client's own, the request's ID instead of the new
// one, as Track keeps a client's valid X-Request-Id. Call it before Answer.
func (t Tracked) KeepID(id string) {
	t.ex.id = []string{id}
	t.ex.info.RequestID = id
}

// Answer returns the writer to answer through, over w.
func (t Tracked) Answer(w http.ResponseWriter) http.ResponseWriter {
	t.ex.rw = responseWriter{ResponseWriter: w}
	w.Header()[RequestIDHeader] = t.ex.id
	return &t.ex.rw
}

// End writes the access log line of the request once answered (unless
// log is nil), observes it and releases its record from r's context, where
// it was put. r is the lane's request, without a Host or URL path: the
// line takes them from host and path.
func (t Tracked) End(r *http.Request, host, path []byte, log *AccessLog, observe Observe) {
	t.ex.finish(r, host, path, log, observe)
}

// Drop forgets a request that was not answered.
func (t Tracked) Drop() {
	*t.ex = exchange{}
	exchanges.Put(t.ex)
}

// AccessLog writes one line per request: the chosen fields, for a sample
// of the successful requests and every failed one.
type AccessLog struct {
	log    *slog.Logger
	fields uint32 // bit i set: AccessLogFields[i] is written
	sample float64
}

// AccessLogFields are the fields an access log line can carry, in the order
// they are written.
var AccessLogFields = []string{
	"method", "host", "path", "status", "bytes", "duration", "route",
	"upstream", "server", "request_id", "remote", "retries", "error",
	"tls_client_subject", "grpc_status", "proto",
}

// NewAccessLog returns an access log writing to log. fields chooses the
// fields (nil or empty: all); sample is the share of successful requests
// logged, in (0, 1]: errors (5xx, and answers the proxy made for a failure)
// are always logged, so sampling never hides a problem. log's handler must
// be done with a record's attributes when Handle returns, as slog's own
// handlers are: the attributes of a line are reused for the next.
func NewAccessLog(log *slog.Logger, fields []string, sample float64) (*AccessLog, error) {
	a := &AccessLog{log: log, sample: sample}
	if len(fields) == 0 {
		a.fields = 1<<len(AccessLogFields) - 1
	}
	for _, f := range fields {
		i := slices.Index(AccessLogFields, f)
		if i < 0 {
			return nil, fmt.Errorf("access log: unknown field %q", f)
		}
		a.fields |= 1 << i
	}
	if !(sample > 0 && sample <= 1) {
		return nil, fmt.Errorf("access log: sample must be in (0, 1], not %v", sample)
	}
	return a, nil
}

func (a *AccessLog) sampled(status int, info *reqinfo.Info) bool {
	return a.sample >= 1 || status >= 500 || info.Err != nil || failedCall(info) || rand.Float64() < a.sample
}

// failedCall reports whether a gRPC call ended with anything but OK, or
// with no status at all: a failure as much as a 5xx is, under HTTP 200.
func failedCall(info *reqinfo.Info) bool {
	return info.GRPC && info.GRPCStatus != grpcwire.OK
}

func (a *AccessLog) write(r *http.Request, info *reqinfo.Info, status int, bytes int64, d time.Duration) {
	buf := attrBuffers.Get().(*[]slog.Attr)
	attrs := (*buf)[:0]
	for i := range AccessLogFields {
		if a.fields&(1<<i) == 0 {
			continue
		}
		switch i {
		case 0:
			attrs = append(attrs, slog.String("method", r.Method))
		case 1:
			attrs = append(attrs, slog.String("host", r.Host))
		case 2:
			attrs = append(attrs, slog.String("path", r.URL.Path))
		case 3:
			attrs = append(attrs, slog.Int("status", status))
		case 4:
			attrs = append(attrs, slog.Int64("bytes", bytes))
		case 5:
			attrs = append(attrs, slog.Duration("duration", d))
		case 6:
			attrs = append(attrs, slog.String("route", info.Route))
		case 7:
			attrs = append(attrs, slog.String("upstream", info.Upstream))
		case 8:
			attrs = append(attrs, slog.String("server", info.Server))
		case 9:
			attrs = append(attrs, slog.String("request_id", info.RequestID))
		case 10:
			attrs = append(attrs, slog.String("remote", r.RemoteAddr))
		case 11:
			if info.Retries > 0 {
				attrs = append(attrs, slog.Int("retries", info.Retries))
			}
		case 12:
			if info.Err != nil {
				attrs = append(attrs, slog.String("error", info.Err.Error()))
			}
		case 13:
			// Only a verified chain is there to name (tls.client_ca_file
			// makes the handshake verify it); nothing is written otherwise.
			if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
				attrs = append(attrs, slog.String("tls_client_subject", r.TLS.VerifiedChains[0][0].Subject.String()))
			}
		case 14:
			// A gRPC call's status, the server's or the proxy's own: its
			// HTTP status is 200 whatever became of it.
			if info.GRPC && info.GRPCStatus != grpcwire.NoStatus {
				attrs = append(attrs, slog.Int("grpc_status", info.GRPCStatus))
			}
		case 15:
			// The server sets Proto to one of a few constants
			// ("HTTP/1.1", "HTTP/2.0", "HTTP/3.0"): no copy is made.
			attrs = append(attrs, slog.String("proto", r.Proto))
		}
	}
	// A record keeps five attributes in place and allocates for more; one
	// group without a key holds them all instead, and handlers write its
	// attributes as if they were the record's own. The handlers write the
	// line before LogAttrs returns, so the buffer is free again after it.
	a.log.LogAttrs(context.Background(), slog.LevelInfo, "request", slog.Attr{Value: slog.GroupValue(attrs...)})
	clear(attrs)
	*buf = attrs[:0]
	attrBuffers.Put(buf)
}

// attrBuffers hold an access log line's attributes while it is written.
var attrBuffers = sync.Pool{New: func() any {
	b := make([]slog.Attr, 0, len(AccessLogFields))
	return &b
}}

// exchange is one request's record and response writer, pooled together
// so tracking a request costs no allocation of its own.
type exchange struct {
	info reqinfo.Info
	rw   responseWriter
	id   []string // the direct lane's request ID, as a header value
}

var exchanges = sync.Pool{New: func() any { return new(exchange) }}

// responseWriter records the status and body size. It exposes the
// underlying writer through Unwrap, so http.ResponseController can still
// flush (server-sent events) and hijack (WebSocket).
type responseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 || w.status < 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush implements http.Flusher for handlers that check for it directly.
func (w *responseWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker; an upgraded connection logs as 101.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.status = http.StatusSwitchingProtocols
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
