// Package tracing traces each proxied request with OpenTelemetry: a server
// span per request, continued from the client's W3C traceparent, passed on
// to the upstream server, and exported over OTLP/HTTP.
//
// Tracing is off when Config.Endpoint is empty; Middleware then returns the
// next handler itself, so it costs nothing per request. The Tracer keeps its
// own TracerProvider: nothing is registered in OpenTelemetry's global state,
// so two Tracers (the old and the new config during a reload) never
// interfere.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Config says where spans go and how many requests are traced.
type Config struct {
	// Endpoint is the OTLP/HTTP collector: a base URL such as
	// "http://127.0.0.1:4318" (plain HTTP) or "https://otlp.example.com"
	// (TLS), to which /v1/traces is added unless the path already ends in
	// it; or a bare "host:port", which is reached over TLS as the
	// OpenTelemetry SDK does. Empty turns tracing off.
	Endpoint string
	// SampleRatio is the share of new traces recorded, in [0, 1]. It
	// applies only to requests that arrive without a sampling decision: a
	// request whose traceparent says sampled is always traced, and one that
	// says not sampled never is (a parent-based sampler). The zero value
	// records no new traces but still continues sampled ones.
	SampleRatio float64
	// ServiceName is the service.name resource attribute; "" means "proxy".
	ServiceName string
	// Version is the service.version resource attribute and the
	// instrumentation scope's version; it may be empty.
	Version string
	// Logger receives one line when exports start failing and one when
	// they recover. Nil means export failures are not logged.
	Logger *slog.Logger
}

// Tracer starts spans for requests and exports them. The zero value, like
// a nil *Tracer, is off: Middleware returns its argument and Shutdown does
// nothing.
type Tracer struct {
	provider  *sdktrace.TracerProvider // nil when off
	tracer    trace.Tracer
	transport *http.Transport // the exporter's own, closed by Shutdown
}

// scope names the instrumentation in exported spans.
const scope = "github.com/tbsphathuynh/proxy/tracing"

// exportTimeout bounds one export request to the collector.
const exportTimeout = 10 * time.Second

// New returns a Tracer exporting to cfg.Endpoint, or an off Tracer when
// the endpoint is empty. It does not contact the collector: an unreachable
// collector shows up later as an export failure in cfg.Logger. ctx is not
// kept; Shutdown ends the Tracer's goroutines.
func New(ctx context.Context, cfg Config) (*Tracer, error) {
	if cfg.Endpoint == "" {
		return &Tracer{}, nil
	}
	if !(cfg.SampleRatio >= 0 && cfg.SampleRatio <= 1) { // also catches NaN
		return nil, fmt.Errorf("tracing: sample ratio %v not in [0, 1]", cfg.SampleRatio)
	}
	ep, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}

	name := cfg.ServiceName
	if name == "" {
		name = "proxy"
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if cfg.Version != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.Version))
	}
	// The default resource adds the SDK's own attributes and any from
	// OTEL_RESOURCE_ATTRIBUTES; ours, merged last, win.
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}

	// The exporter gets a transport of its own rather than its package-level
	// one, so Shutdown can close its idle connections and leave no
	// goroutine behind.
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: exportTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   exportTimeout,
		ExpectContinueTimeout: time.Second,
	}
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpoint(ep.host),
		otlptracehttp.WithURLPath(ep.path),
		otlptracehttp.WithHTTPClient(&http.Client{Transport: transport, Timeout: exportTimeout}),
	}
	if ep.insecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: exporter for %s: %w", cfg.Endpoint, err)
	}

	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(&reportingExporter{SpanExporter: exp, log: cfg.Logger, endpoint: cfg.Endpoint}),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
		sdktrace.WithResource(res),
	)
	return &Tracer{
		provider:  provider,
		tracer:    provider.Tracer(scope, trace.WithInstrumentationVersion(cfg.Version)),
		transport: transport,
	}, nil
}

// Shutdown exports the spans still queued, within ctx, and stops the
// exporter. Spans ended afterwards are dropped. It is safe to call more
// than once and on an off Tracer.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil || t.provider == nil {
		return nil
	}
	err := t.provider.Shutdown(ctx)
	t.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// propagator reads and writes the W3C traceparent and tracestate headers
// (https://www.w3.org/TR/trace-context/).
var propagator propagation.TraceContext

// endpoint is a parsed Config.Endpoint.
type endpoint struct {
	host     string // host:port
	path     string // where spans are posted, /v1/traces by default
	insecure bool   // plain HTTP
}

// tracesPath is the OTLP/HTTP path for spans, added to a base URL as the
// OTLP exporter specification says for OTEL_EXPORTER_OTLP_ENDPOINT.
const tracesPath = "/v1/traces"

func parseEndpoint(s string) (endpoint, error) {
	if !strings.Contains(s, "://") {
		if host, port, err := net.SplitHostPort(s); err != nil || host == "" || port == "" {
			return endpoint{}, fmt.Errorf("tracing: endpoint %q: want http://host:port, https://host[:port] or host:port", s)
		}
		return endpoint{host: s, path: tracesPath}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("tracing: endpoint: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return endpoint{}, fmt.Errorf("tracing: endpoint %q: scheme must be http or https", s)
	case u.Host == "":
		return endpoint{}, fmt.Errorf("tracing: endpoint %q: no host", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return endpoint{}, fmt.Errorf("tracing: endpoint %q: only scheme, host, port and path are allowed", s)
	}
	path := u.Path
	if !strings.HasSuffix(path, tracesPath) {
		path = strings.TrimSuffix(path, "/") + tracesPath
	}
	return endpoint{host: u.Host, path: path, insecure: u.Scheme == "http"}, nil
}

// reportingExporter logs export failures through our logger, once when
// they start and once when exports succeed again, instead of handing every
// failed batch to OpenTelemetry's global error handler (which would print
// to the standard logger every few seconds while a collector is down).
type reportingExporter struct {
	sdktrace.SpanExporter
	log      *slog.Logger
	endpoint string

	failing atomic.Bool
	lost    atomic.Int64 // spans in failed exports since failing began
}

// ExportSpans exports spans and reports a change between working and
// failing. It returns nil even on failure: the batch is lost either way,
// and we have reported it.
func (e *reportingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		if e.failing.CompareAndSwap(true, false) && e.log != nil {
			e.log.Info("tracing: export recovered", "endpoint", e.endpoint, "spans_lost", e.lost.Swap(0))
		}
		return nil
	}
	lost := e.lost.Add(int64(len(spans)))
	if e.failing.CompareAndSwap(false, true) && e.log != nil {
		e.log.Warn("tracing: export failing", "endpoint", e.endpoint, "spans_lost", lost, "error", err)
	}
	return nil
}
