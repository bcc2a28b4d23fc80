package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tbsphathuynh/proxy/internal/reqinfo"
)

// discardWriter is a ResponseWriter that allocates nothing, so the
// benchmark measures the middleware rather than httptest.ResponseRecorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkMiddleware measures the per-request cost of tracing, off and
// on, with an inner handler that does what the forwarder does to the
// request record. The collector answers every export with 200 and keeps
// nothing.
//
//	go test -run '^$' -bench Middleware -benchmem ./tracing/
func BenchmarkMiddleware(b *testing.B) {
	noop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer noop.Close()

	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := reqinfo.From(r.Context())
		info.Route, info.Upstream, info.Server = "api", "backend", "b1"
		w.WriteHeader(http.StatusOK)
	})
	cases := []struct {
		name     string
		endpoint string
		ratio    float64
		incoming string // client traceparent, "" for none
	}{
		{"off", "", 0, ""},
		{"off/client-traceparent", "", 0, clientSampled},
		{"sampled-0", noop.URL, 0, ""},
		{"sampled-0/client-unsampled", noop.URL, 0, clientDropped},
		{"sampled-1", noop.URL, 1, ""},
		{"sampled-1/client-sampled", noop.URL, 1, clientSampled},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			tr, err := New(context.Background(), Config{Endpoint: bc.endpoint, SampleRatio: bc.ratio})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = tr.Shutdown(context.Background()) }()
			h := tr.Middleware(inner)

			info := &reqinfo.Info{RequestID: "req-1"}
			r := httptest.NewRequest(http.MethodGet, "http://api.example.com/v1/users", nil)
			r = r.WithContext(reqinfo.With(r.Context(), info))
			w := &discardWriter{h: http.Header{}}
			incoming := []string{bc.incoming}
			b.ReportAllocs()
			for b.Loop() {
				// The middleware rewrites the traceparent; put the
				// client's back as a new request would have it.
				if bc.incoming != "" {
					incoming[0] = bc.incoming // the middleware writes in place
					r.Header["Traceparent"] = incoming
				} else {
					delete(r.Header, "Traceparent")
				}
				h.ServeHTTP(w, r)
			}
		})
	}
}
