package tracing

import (
	"bufio"
	"net"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tbsphathuynh/proxy/internal/reqinfo"
)

// Middleware traces each request through next. It continues the trace in
// the request's traceparent header, or starts one, with a server span;
// replaces the request's traceparent with that span's, so the proxied
// request names our span as its parent (the forwarder copies request
// headers to the server); and after next returns, records on the span
// what the request's reqinfo.Info says (route, upstream, server, retries,
// request ID) with the method, path, host and final status.
//
// The Info must already be in the request context (accesslog.Track, placed
// outside this one) and is read only after next returns.
//
// On an off Tracer, Middleware returns next itself.
// Enabled reports whether t traces requests; its Middleware is then more
// than the handler it wraps.
func (t *Tracer) Enabled() bool { return t != nil && t.provider != nil }

func (t *Tracer) Middleware(next http.Handler) http.Handler {
	if t == nil || t.provider == nil {
		return next
	}
	return &handler{tracer: t.tracer, next: next}
}

type handler struct {
	tracer trace.Tracer
	next   http.Handler
}

// Header names in canonical form, for direct map access.
const (
	traceparentHeader = "Traceparent"
	tracestateHeader  = "Tracestate"
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	carrier := headerCarrier(r.Header)
	ctx := propagator.Extract(r.Context(), carrier)
	method, known := spanMethod(r.Method)
	ctx, span := h.tracer.Start(ctx, spanNames[method], serverKind...)

	// A tracestate belongs with the traceparent it came with: Inject writes
	// back the one we continued, if any, and one that came next to a
	// traceparent we could not parse is dropped, as the W3C Trace Context
	// processing model asks.
	delete(r.Header, tracestateHeader)
	propagator.Inject(ctx, carrier)
	r = r.WithContext(ctx)

	if !span.IsRecording() {
		// Sampled out: the span is a cheap carrier of the trace ID and the
		// "not sampled" flag for the server. Nothing to record.
		h.next.ServeHTTP(w, r)
		span.End()
		return
	}

	// What the client asked for, taken now: handlers further in may
	// rewrite the request's URL.
	req := request{method: method, original: r.Method, path: r.URL.Path, host: r.Host}
	if known {
		req.original = ""
	}
	sw := &statusWriter{ResponseWriter: w}
	done := false
	defer func() {
		// Deferred so a panic (http.ErrAbortHandler when the forwarder
		// abandons a response midway) still ends the span; the panic goes
		// on up unrecovered, its stack intact.
		record(span, reqinfo.From(ctx), req, sw.status, done)
		span.End()
	}()
	h.next.ServeHTTP(sw, r)
	done = true
}

// headerCarrier lets the propagator read and write request headers without
// allocating: propagation.HeaderCarrier canonicalizes the propagator's
// lower-case names into a new string on every call.
type headerCarrier http.Header

var _ propagation.TextMapCarrier = headerCarrier(nil)

func canonical(key string) string {
	switch key {
	case "traceparent":
		return traceparentHeader
	case "tracestate":
		return tracestateHeader
	}
	return http.CanonicalHeaderKey(key)
}

// Get returns the first value of the header key.
func (c headerCarrier) Get(key string) string {
	if v := c[canonical(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the header key's values with value, in place when it has
// exactly one.
func (c headerCarrier) Set(key, value string) {
	key = canonical(key)
	if v := c[key]; len(v) == 1 {
		v[0] = value
		return
	}
	c[key] = []string{value}
}

// Keys lists the header names.
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// serverKind is built once: a variadic option built per call would
// allocate per request.
var serverKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// Attribute keys: OpenTelemetry's HTTP semantic conventions, then ours.
const (
	keyMethod         = attribute.Key("http.request.method")
	keyMethodOriginal = attribute.Key("http.request.method_original")
	keyPath           = attribute.Key("url.path")
	keyHost           = attribute.Key("server.address")
	keyStatus         = attribute.Key("http.response.status_code")
	keyRoute          = attribute.Key("proxy.route")
	keyUpstream       = attribute.Key("proxy.upstream")
	keyServer         = attribute.Key("proxy.server")
	keyRetries        = attribute.Key("proxy.retries")
	keyRequestID      = attribute.Key("proxy.request_id")
)

// statusClientGone is the status the access log reports when the client
// left before an answer; the span says the same.
const statusClientGone = 499

// request is what a span reports about the client's request.
type request struct {
	method   string // as reported: a known method or _OTHER
	original string // the method sent, when reported as _OTHER
	path     string
	host     string
}

// record sets the span's attributes and status once the request is served.
// info may be nil; status is what was written (0 if nothing); done is false
// after a panic.
func record(span trace.Span, info *reqinfo.Info, req request, status int, done bool) {
	if status == 0 && done {
		status = http.StatusOK // net/http sends 200 for a handler that wrote nothing
		if info != nil && info.Err != nil {
			status = statusClientGone
		}
	}

	var attrs [11]attribute.KeyValue
	a := append(attrs[:0],
		keyMethod.String(req.method),
		keyPath.String(req.path),
		keyHost.String(hostOnly(req.host)),
	)
	if req.original != "" {
		a = append(a, keyMethodOriginal.String(req.original))
	}
	if status != 0 {
		a = append(a, keyStatus.Int(status))
	}
	if info != nil {
		a = appendNonEmpty(a, keyRoute, info.Route)
		a = appendNonEmpty(a, keyUpstream, info.Upstream)
		a = appendNonEmpty(a, keyServer, info.Server)
		a = appendNonEmpty(a, keyRequestID, info.RequestID)
		a = append(a, keyRetries.Int(info.Retries))
	}
	span.SetAttributes(a...)

	// Server spans are errors for 5xx only: a 4xx is the client's mistake
	// (OpenTelemetry HTTP semantic conventions, "Status").
	switch {
	case !done:
		span.SetStatus(codes.Error, "response aborted")
	case status >= 500:
		msg := http.StatusText(status)
		if info != nil && info.Err != nil {
			msg = info.Err.Error()
		}
		span.SetStatus(codes.Error, msg)
	}
}

func appendNonEmpty(a []attribute.KeyValue, k attribute.Key, v string) []attribute.KeyValue {
	if v == "" {
		return a
	}
	return append(a, k.String(v))
}

// hostOnly strips the port from a Host header value, IPv6 brackets too.
func hostOnly(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return host
	}
	return hostport
}

// spanNames are precomputed so naming a span allocates nothing.
var spanNames = map[string]string{}

// methods are those of RFC 9110 §9 and RFC 5789. Any other method is
// reported as _OTHER, as the semantic conventions ask, so a client cannot
// create span names at will.
var methods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodDelete, http.MethodConnect, http.MethodOptions,
	http.MethodTrace, http.MethodPatch,
}

const otherMethod = "_OTHER"

func init() {
	for _, m := range append(methods, otherMethod) {
		spanNames[m] = "proxy " + m
	}
}

// spanMethod returns the method to report and whether it is a known one.
func spanMethod(m string) (string, bool) {
	if _, ok := spanNames[m]; ok && m != otherMethod {
		return m, true
	}
	return otherMethod, false
}

// statusWriter records the status sent. It implements http.Flusher and
// http.Hijacker for handlers that assert them, and Unwrap so
// http.ResponseController (which the forwarder uses to flush and to switch
// protocols) reaches the connection's own writer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the first final status; 1xx interim responses (103
// Early Hints, forwarded by the forwarder) may come before it.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush sends buffered data to the client (server-sent events, streaming).
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack takes over the connection; the forwarder does so only to switch
// protocols (WebSocket), which it answers with 101 on the raw connection.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
