package grpcwire

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestIsCall(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc":               true,
		"application/grpc+proto":         true,
		"application/grpc;charset=utf-8": true,
		"application/grpc-web":           false,
		"application/grpc-web+proto":     false,
		"application/json":               false,
		"":                               false,
	} {
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		if got := IsCall(h); got != want {
			t.Errorf("IsCall(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestTimeout(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"1H": time.Hour, "2M": 2 * time.Minute, "3S": 3 * time.Second, "150m": 150 * time.Millisecond,
		"7u": 7 * time.Microsecond, "99999999n": 99999999, "0m": 0,
		"": -1, "S": -1, "5": -1, "5x": -1, "-5S": -1, "123456789S": -1, "99999999H": -1,
	} {
		h := http.Header{}
		if v != "" {
			h.Set("Grpc-Timeout", v)
		}
		got, ok := Timeout(h)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("Timeout(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestWriteStatusIsTrailersOnly(t *testing.T) {
	w := httptest.NewRecorder()
	WriteStatus(w, httptest.NewRequest("POST", "/s/M", nil), Unavailable, "proxy: 100% down\n")
	if w.Code != 200 || w.Header().Get("Grpc-Status") != "14" || w.Header().Get("Content-Type") != "application/grpc" {
		t.Errorf("answer %d %v, want 200 with grpc-status 14", w.Code, w.Header())
	}
	if got := w.Header().Get("Grpc-Message"); got != "proxy: 100%25 down%0A" {
		t.Errorf("grpc-message %q, want it percent-encoded", got)
	}
	if w.Body.Len() != 0 {
		t.Errorf("a body of %d bytes, want none", w.Body.Len())
	}
}

func TestFramesFindMessageEdges(t *testing.T) {
	stream := []byte{0, 0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 'z'}
	edges := map[int]bool{0: true, 8: true, 13: true, 19: true}
	// Fed one byte at a time, as a stream may come.
	var f Frames
	for i := 0; i <= len(stream); i++ {
		if f.AtEdge() != edges[i] {
			t.Errorf("after %d bytes AtEdge = %v, want %v", i, f.AtEdge(), edges[i])
		}
		if i < len(stream) {
			f.Feed(stream[i : i+1])
		}
	}
	var g Frames
	g.Feed(stream[:10])
	g.Feed(stream[10:])
	if !g.AtEdge() {
		t.Error("fed in two pieces, the stream does not end at an edge")
	}
}

func TestFromHTTP(t *testing.T) {
	for status, want := range map[int]int{
		400: Internal, 401: Unauthenticated, 403: PermissionDenied, 404: Unimplemented,
		408: DeadlineExceeded, 413: ResourceExhausted, 429: ResourceExhausted, 499: Canceled,
		500: Internal, 502: Unavailable, 503: Unavailable, 504: DeadlineExceeded,
		418: Unknown, 405: Unknown,
	} {
		if got := FromHTTP(status); got != want {
			t.Errorf("FromHTTP(%d) = %d, want %d", status, got, want)
		}
	}
}
