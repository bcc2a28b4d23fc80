package middleware

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tbsphathuynh/proxy/internal/reqinfo"
)

// Observe is called once per request after it is served, with its record,
// final status and bytes sent; metrics hang off it. It may be nil.
type Observe func(info *reqinfo.Info, method string, status int, bytes int64, d time.Duration)

// Track gives every request an ID and a record that the forwarder fills in,
// and after the answer writes one access log line (unless log is nil) and
// calls observe (unless nil). The ID goes back to the client in
// X-Request-Id; the forwarder sends it on to servers from the record.
//
// Tracking costs two allocations per request (the record's context and
// the request carrying it); the record and the response writer are
// pooled, and a new ID costs an allocation once every 64 requests.
func Track(log *slog.Logger, observe Observe) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ex := exchanges.Get().(*exchange)
			id := requestID(r)
			ex.info = reqinfo.Info{Start: time.Now(), RequestID: id[0]}
			ex.rw = responseWriter{ResponseWriter: w}
			w.Header()[RequestIDHeader] = id
			// A handler that aborts the response (http.ErrAbortHandler, a
			// server's body cut short) is still logged and counted.
			defer ex.finish(r, log, observe)

			next.ServeHTTP(&ex.rw, r.WithContext(reqinfo.With(r.Context(), &ex.info)))
		})
	}
}

// finish logs and observes the exchange, then returns it to the pool.
func (ex *exchange) finish(r *http.Request, log *slog.Logger, observe Observe) {
	d := time.Since(ex.info.Start)
	status := ex.rw.status
	if status == 0 {
		status = http.StatusOK
		if ex.info.Err != nil {
			status = 499
		}
	}
	if log != nil {
		logRequest(log, r, &ex.info, status, ex.rw.bytes, d)
	}
	if observe != nil {
		observe(&ex.info, r.Method, status, ex.rw.bytes, d)
	}
	*ex = exchange{}
	exchanges.Put(ex)
}

func logRequest(log *slog.Logger, r *http.Request, info *reqinfo.Info, status int, bytes int64, d time.Duration) {
	attrs := [...]slog.Attr{
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", bytes),
		slog.Duration("duration", d),
		slog.String("route", info.Route),
		slog.String("upstream", info.Upstream),
		slog.String("server", info.Server),
		slog.String("request_id", info.RequestID),
		slog.String("remote", r.RemoteAddr),
		slog.Int("retries", info.Retries),
	}
	n := len(attrs)
	if info.Retries == 0 {
		n--
	}
	if info.Err != nil {
		log.LogAttrs(context.Background(), slog.LevelInfo, "request", append(attrs[:n:n], slog.String("error", info.Err.Error()))...)
		return
	}
	log.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs[:n]...)
}

// exchange is one request's record and response writer, pooled together
// so tracking a request costs no allocation of its own.
type exchange struct {
	info reqinfo.Info
	rw   responseWriter
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
