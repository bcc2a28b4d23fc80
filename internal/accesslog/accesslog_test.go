package accesslog

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/internal/reqinfo"
	"github.com/tbsphathuynh/proxy/middleware"
)

func TestRequestIDKeptOrMade(t *testing.T) {
	cases := []struct {
		name   string
		header []string
		keep   bool
	}{
		{"none", nil, false},
		{"sane", []string{"abc-123"}, true},
		{"two values", []string{"a", "b"}, false},
		{"control bytes", []string{"a\x01b"}, false},
		{"too long", []string{string(make([]byte, 129))}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.header != nil {
				r.Header[RequestIDHeader] = tc.header
			}
			got := requestID(r)
			if len(got) != 1 || cap(got) != 1 {
				t.Fatalf("value %q (cap %d), want one value of capacity one", got, cap(got))
			}
			if tc.keep && got[0] != tc.header[0] {
				t.Errorf("client ID %q replaced by %q", tc.header[0], got[0])
			}
			if !tc.keep && (len(got[0]) != 32 || !validID(got[0])) {
				t.Errorf("new ID %q", got[0])
			}
		})
	}
}

// TestIDsNeverChange checks that IDs carved from a shared buffer stay as
// they were handed out however many come after them, and are unique.
func TestIDsNeverChange(t *testing.T) {
	first := make([]string, 3*idsPerChunk)
	copies := make([]string, len(first))
	for i := range first {
		first[i] = NewID()
		copies[i] = string([]byte(first[i]))
	}
	seen := make(map[string]bool)
	for range 10 * idsPerChunk {
		id := NewID()
		if seen[id] {
			t.Fatalf("ID %s made twice", id)
		}
		seen[id] = true
	}
	for i := range first {
		if first[i] != copies[i] {
			t.Fatalf("ID %d changed from %s to %s", i, copies[i], first[i])
		}
		if seen[first[i]] {
			t.Fatalf("ID %s made twice", first[i])
		}
	}
}

func TestTrackRecordsEveryRequest(t *testing.T) {
	type seen struct {
		status int
		route  string
		err    error
	}
	var got []seen
	observe := func(info *reqinfo.Info, _ string, status int, _ int64, _ time.Duration) {
		got = append(got, seen{status, info.Route, info.Err})
	}
	h := Track(nil, observe)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := reqinfo.From(r.Context())
		info.Route = r.URL.Path
		switch r.URL.Path {
		case "/gone":
			info.Err = http.ErrHandlerTimeout
		case "/abort":
			w.WriteHeader(200)
			panic(http.ErrAbortHandler)
		default:
			w.WriteHeader(201)
		}
	}))
	for _, path := range []string{"/ok", "/gone", "/abort"} {
		func() {
			defer func() { recover() }()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
			if id := w.Header().Get(RequestIDHeader); len(id) != 32 {
				t.Errorf("%s: X-Request-Id %q", path, id)
			}
		}()
	}
	want := []seen{{201, "/ok", nil}, {499, "/gone", http.ErrHandlerTimeout}, {200, "/abort", nil}}
	if len(got) != len(want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d: observed %+v, want %+v", i, got[i], want[i])
		}
	}
}

// BenchmarkTrack is the tracking middleware's own cost: request ID,
// record, status-recording writer, observe call; access log off.
func BenchmarkTrack(b *testing.B) {
	n := 0
	h := Track(nil, func(*reqinfo.Info, string, int, int64, time.Duration) { n++ })(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqinfo.From(r.Context()).Route = "r"
		w.WriteHeader(200)
	}))
	r := httptest.NewRequest("GET", "/", nil)
	// As the proxy's listeners give every connection (see reqinfo.Slot).
	r = r.WithContext(reqinfo.WithSlot(r.Context()))
	w := &nopWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, r)
	}
}

// BenchmarkTrackClientID is BenchmarkTrack when the client sent an ID.
func BenchmarkTrackClientID(b *testing.B) {
	h := Track(nil, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set(RequestIDHeader, "client-id-1")
	w := &nopWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, r)
	}
}

func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		NewID()
	}
}

// BenchmarkChain is Recover, CloseChunked and Track together, as the
// server wraps the dispatcher.
func BenchmarkChain(b *testing.B) {
	h := middleware.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }),
		middleware.Recover(nil, nil), middleware.CloseChunked, Track(nil, nil))
	r := httptest.NewRequest("GET", "/", nil)
	w := &nopWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, r)
	}
}

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) WriteHeader(int)             {}
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }

// An access log line carries its fields at the top level, in the order of
// AccessLogFields, in both formats the proxy writes.
func TestAccessLogLine(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var out bytes.Buffer
		al, err := NewAccessLog(slog.New(logHandler(format, &out)), []string{"method", "path", "status", "route", "request_id"}, 1)
		if err != nil {
			t.Fatal(err)
		}
		handler := Track(al, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reqinfo.From(r.Context()).Route = "api"
			w.WriteHeader(http.StatusTeapot)
		}))
		handler.ServeHTTP(&nopWriter{h: make(http.Header)}, slotRequest())

		line := strings.TrimSpace(out.String())
		want := `"method":"GET","path":"/x","status":418,"route":"api","request_id":"abc"}`
		if format == "text" {
			want = ` method=GET path=/x status=418 route=api request_id=abc`
		}
		if !strings.HasSuffix(line, want) {
			t.Errorf("%s line %q, want it to end with %q", format, line, want)
		}
	}
}

// Logging a request with every field, more than a log record keeps in
// place, allocates nothing on a connection with a record slot. (Not under
// the race detector, which makes sync.Pool drop items at random; make test
// runs this test once more without it.)
func TestAccessLogAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts of pooled paths mean nothing under -race")
	}
	for _, format := range []string{"json", "text"} {
		var out bytes.Buffer
		al, err := NewAccessLog(slog.New(logHandler(format, &out)), nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		handler := Track(al, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		r := slotRequest()
		w := &nopWriter{h: make(http.Header)}
		if n := testing.AllocsPerRun(100, func() {
			clear(w.h)
			out.Reset()
			handler.ServeHTTP(w, r)
		}); n != 0 {
			t.Errorf("%s: %v allocations per logged request, want 0", format, n)
		}
	}
}

func logHandler(format string, w io.Writer) slog.Handler {
	if format == "text" {
		return slog.NewTextHandler(w, nil)
	}
	return slog.NewJSONHandler(w, nil)
}

// slotRequest is a request with a client's request ID on a connection
// with a record slot, as the proxy's listeners give every connection.
func slotRequest() *http.Request {
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set(RequestIDHeader, "abc")
	return r.WithContext(reqinfo.WithSlot(r.Context()))
}
