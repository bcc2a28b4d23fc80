package tracing

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tbsphathuynh/proxy/internal/reqinfo"
)

// TestSpanContinuesIncomingTrace is the acceptance test: the
// collector receives a server span that is the child of the client's span,
// carries what the forwarder recorded, and is the parent named in the
// traceparent the upstream server would receive.
func TestSpanContinuesIncomingTrace(t *testing.T) {
	c := newCollector(t)
	tr := newTracer(t, Config{Endpoint: c.URL, SampleRatio: 1, ServiceName: "edge", Version: "v1.2.3"})

	var ourSpan trace.SpanID
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ourSpan = trace.SpanContextFromContext(r.Context()).SpanID()
		want := "00-" + clientTraceID + "-" + ourSpan.String() + "-01"
		if got := r.Header.Get("Traceparent"); got != want {
			t.Errorf("traceparent to the server = %q, want %q (our span as parent)", got, want)
		}
		if got := r.Header.Get("Tracestate"); got != "vendor=x" {
			t.Errorf("tracestate to the server = %q, want the client's", got)
		}
		info := reqinfo.From(r.Context())
		info.Route, info.Upstream, info.Server, info.Retries = "api", "backend", "b1", 2
		info.Err = errors.New("dial tcp 10.0.0.1:80: connection refused")
		w.WriteHeader(http.StatusBadGateway)
	})
	h := withInfo(tr.Middleware(inner))

	r := httptest.NewRequest(http.MethodGet, "http://api.example.com:8080/v1/users?token=secret", nil)
	r.Header.Set("Traceparent", clientSampled)
	r.Header.Set("Tracestate", "vendor=x")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", w.Code)
	}

	shutdown(t, tr)
	got := c.waitFor(t, 1)
	if len(got) != 1 {
		t.Fatalf("received %d spans, want 1", len(got))
	}
	s := got[0].span
	if !bytes.Equal(s.GetTraceId(), mustHex(t, clientTraceID)) {
		t.Errorf("trace ID %x, want the client's %s", s.GetTraceId(), clientTraceID)
	}
	if !bytes.Equal(s.GetParentSpanId(), mustHex(t, clientSpanID)) {
		t.Errorf("parent span ID %x, want the client's %s", s.GetParentSpanId(), clientSpanID)
	}
	if !bytes.Equal(s.GetSpanId(), ourSpan[:]) {
		t.Errorf("span ID %x, want %s (the one passed to the server)", s.GetSpanId(), ourSpan)
	}
	if s.GetName() != "proxy GET" || s.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("span %q kind %v, want \"proxy GET\" server", s.GetName(), s.GetKind())
	}
	wantAttrs := map[string]any{
		"http.request.method":       "GET",
		"url.path":                  "/v1/users",
		"server.address":            "api.example.com",
		"http.response.status_code": int64(502),
		"proxy.route":               "api",
		"proxy.upstream":            "backend",
		"proxy.server":              "b1",
		"proxy.retries":             int64(2),
		"proxy.request_id":          "req-1",
	}
	if diff := cmp.Diff(wantAttrs, attrMap(s.GetAttributes())); diff != "" {
		t.Errorf("span attributes (-want +got):\n%s", diff)
	}
	if st := s.GetStatus(); st.GetCode() != tracepb.Status_STATUS_CODE_ERROR || !strings.Contains(st.GetMessage(), "connection refused") {
		t.Errorf("span status %v %q, want error with the cause", st.GetCode(), st.GetMessage())
	}
	res := got[0].resource
	if res["service.name"] != "edge" || res["service.version"] != "v1.2.3" {
		t.Errorf("resource service.name=%v service.version=%v, want edge v1.2.3", res["service.name"], res["service.version"])
	}
}

// TestSampling checks the parent-based sampler: the client's decision
// wins, the ratio decides only new traces, and the server always learns
// the decision through the traceparent flags.
func TestSampling(t *testing.T) {
	tests := []struct {
		name        string
		incoming    string // traceparent from the client, "" for none
		ratio       float64
		wantSpan    bool
		wantFlags   string // last field of the traceparent sent on
		wantTraceID string // "" when a new trace is expected
	}{
		{"new trace, ratio 1", "", 1, true, "01", ""},
		{"new trace, ratio 0", "", 0, false, "00", ""},
		{"sampled parent, ratio 0", clientSampled, 0, true, "01", clientTraceID},
		{"unsampled parent, ratio 1", clientDropped, 1, false, "00", clientTraceID},
		{"malformed parent starts a new trace", "00-zz-yy-01", 1, true, "01", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCollector(t)
			tr := newTracer(t, Config{Endpoint: c.URL, SampleRatio: tt.ratio})
			var sent, sentState string
			inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sent, sentState = r.Header.Get("Traceparent"), r.Header.Get("Tracestate")
				// Sampled out, the writer is not wrapped: no work is done.
				if _, wrapped := w.(*statusWriter); wrapped != tt.wantSpan {
					t.Errorf("writer wrapped = %v, want %v", wrapped, tt.wantSpan)
				}
			})
			r := httptest.NewRequest(http.MethodPost, "/x", nil)
			if tt.incoming != "" {
				r.Header.Set("Traceparent", tt.incoming)
				r.Header.Set("Tracestate", "vendor=x")
			}
			withInfo(tr.Middleware(inner)).ServeHTTP(httptest.NewRecorder(), r)

			parts := strings.Split(sent, "-")
			if len(parts) != 4 || len(parts[1]) != 32 || len(parts[2]) != 16 {
				t.Fatalf("traceparent sent on = %q, want a valid one", sent)
			}
			if parts[3] != tt.wantFlags {
				t.Errorf("flags %s, want %s", parts[3], tt.wantFlags)
			}
			if tt.wantTraceID != "" && parts[1] != tt.wantTraceID {
				t.Errorf("trace ID %s, want the client's %s", parts[1], tt.wantTraceID)
			}
			if tt.wantTraceID == "" && parts[1] == clientTraceID {
				t.Errorf("trace ID is the client's, want a new one")
			}
			// The client's tracestate goes with its trace, never with a new one.
			wantState := ""
			if tt.wantTraceID != "" {
				wantState = "vendor=x"
			}
			if sentState != wantState {
				t.Errorf("tracestate sent on = %q, want %q", sentState, wantState)
			}
			if parts[2] == clientSpanID {
				t.Errorf("parent sent on is the client's span, want ours")
			}

			shutdown(t, tr) // flushes: every span ended is exported now
			got := c.received()
			if tt.wantSpan && len(got) != 1 {
				t.Fatalf("received %d spans, want 1", len(got))
			}
			if !tt.wantSpan && len(got) != 0 {
				t.Fatalf("received %d spans, want none", len(got))
			}
			if tt.wantSpan && strings.Contains(tt.incoming, "zz") && len(got[0].span.GetParentSpanId()) != 0 {
				t.Errorf("span has parent %x, want a root span", got[0].span.GetParentSpanId())
			}
		})
	}
}

// TestStatus checks the status recorded for what a handler writes.
func TestStatus(t *testing.T) {
	tests := []struct {
		name      string
		serve     func(w http.ResponseWriter, r *http.Request)
		wantCode  any // http.response.status_code, nil for none
		wantError bool
	}{
		{"nothing written", func(w http.ResponseWriter, r *http.Request) {}, int64(200), false},
		{"body only", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("hi")) }, int64(200), false},
		{"early hints then 204", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusNoContent)
		}, int64(204), false},
		{"404 is not our error", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }, int64(404), false},
		{"503", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, int64(503), true},
		{"flushed stream", func(w http.ResponseWriter, r *http.Request) {
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("flush through the wrapper: %v", err)
			}
		}, int64(200), false},
		{"client went away", func(w http.ResponseWriter, r *http.Request) {
			reqinfo.From(r.Context()).Err = context.Canceled
		}, int64(499), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCollector(t)
			tr := newTracer(t, Config{Endpoint: c.URL, SampleRatio: 1})
			withInfo(tr.Middleware(http.HandlerFunc(tt.serve))).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			shutdown(t, tr)
			got := c.waitFor(t, 1)
			s := got[0].span
			if code := attrMap(s.GetAttributes())["http.response.status_code"]; code != tt.wantCode {
				t.Errorf("status code attribute %v, want %v", code, tt.wantCode)
			}
			if isErr := s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR; isErr != tt.wantError {
				t.Errorf("span error = %v, want %v", isErr, tt.wantError)
			}
		})
	}
}

// TestUnknownMethod: a method outside RFC 9110 is named _OTHER, so clients
// cannot make up span names; the attributes keep what was sent.
func TestUnknownMethod(t *testing.T) {
	c := newCollector(t)
	tr := newTracer(t, Config{Endpoint: c.URL, SampleRatio: 1})
	tr.Middleware(&countingHandler{}).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("PURGE", "/", nil))
	shutdown(t, tr)
	s := c.waitFor(t, 1)[0].span
	attrs := attrMap(s.GetAttributes())
	if s.GetName() != "proxy _OTHER" || attrs["http.request.method"] != "_OTHER" || attrs["http.request.method_original"] != "PURGE" {
		t.Errorf("span %q with method %v (original %v), want \"proxy _OTHER\", _OTHER, PURGE",
			s.GetName(), attrs["http.request.method"], attrs["http.request.method_original"])
	}
}

// TestAbortedResponseEndsSpan: ReverseProxy panics with
// http.ErrAbortHandler when it abandons a response; the span still ends,
// as an error, and the panic goes on.
func TestAbortedResponseEndsSpan(t *testing.T) {
	c := newCollector(t)
	tr := newTracer(t, Config{Endpoint: c.URL, SampleRatio: 1})
	h := tr.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler)
	}))
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler", v)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}()
	shutdown(t, tr)
	s := c.waitFor(t, 1)[0].span
	if s.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("span status %v, want error", s.GetStatus())
	}
}

// TestThroughReverseProxy runs the middleware around a real
// httputil.ReverseProxy: the server receives our span as its parent, and
// a protocol switch (hijacked through the status writer) is recorded as
// 101.
func TestThroughReverseProxy(t *testing.T) {
	var gotParent atomic.Value
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotParent.Store(r.Header.Get("Traceparent"))
		if r.Header.Get("Upgrade") != "echo" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("backend hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		line, _ := brw.ReadString('\n')
		_, _ = brw.WriteString(line)
		_ = brw.Flush()
	}))
	defer backend.Close()
	target, _ := url.Parse(backend.URL)

	c := newCollector(t)
	tr := newTracer(t, Config{Endpoint: c.URL, SampleRatio: 1})
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }}
	front := httptest.NewServer(withInfo(tr.Middleware(rp)))
	defer front.Close()

	// A plain request.
	req, _ := http.NewRequest(http.MethodGet, front.URL+"/plain", nil)
	req.Header.Set("Traceparent", clientSampled)
	resp, err := front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	plainParent, _ := gotParent.Load().(string)

	// A protocol switch, over a raw connection.
	conn, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	up, err := http.ReadResponse(br, nil)
	if err != nil || up.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v, want 101", up, err)
	}
	defer up.Body.Close()
	_, _ = io.WriteString(conn, "ping\n")
	if line, err := br.ReadString('\n'); line != "ping\n" {
		t.Fatalf("echo over the upgraded connection: %q %v", line, err)
	}
	conn.Close()

	// The upgraded request's span ends when the proxy's copy goroutines
	// do, after the connection closes: wait for both spans.
	deadline := time.Now().Add(10 * time.Second)
	for len(c.received()) < 2 && time.Now().Before(deadline) {
		if err := tr.provider.ForceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	spans := map[string]*tracepb.Span{}
	for _, e := range c.waitFor(t, 2) {
		spans[attrMap(e.span.GetAttributes())["url.path"].(string)] = e.span
	}

	plain := spans["/plain"]
	if want := "00-" + clientTraceID + "-" + hex.EncodeToString(plain.GetSpanId()) + "-01"; plainParent != want {
		t.Errorf("backend got traceparent %q, want %q", plainParent, want)
	}
	if code := attrMap(plain.GetAttributes())["http.response.status_code"]; code != int64(200) {
		t.Errorf("plain request status attribute %v, want 200", code)
	}
	if code := attrMap(spans["/up"].GetAttributes())["http.response.status_code"]; code != int64(101) {
		t.Errorf("upgraded request status attribute %v, want 101", code)
	}
}
