package middleware

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A panic answers 500 with a short page, or INTERNAL to a gRPC call,
// which cannot read a page.
func TestRecoverAnswers(t *testing.T) {
	h := Recover(slog.New(slog.DiscardHandler), nil)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	}))
	for _, tc := range []struct {
		name, contentType string
		status            int
		grpcStatus, body  string
	}{
		{"http", "", 500, "", "500 Internal Server Error\n"},
		{"grpc", "application/grpc", 200, "13", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/svc/Method", nil)
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			body, _ := io.ReadAll(w.Result().Body)
			if w.Code != tc.status || w.Header().Get("Grpc-Status") != tc.grpcStatus || string(body) != tc.body {
				t.Errorf("%d, grpc-status %q, body %q; want %d, %q, %q", w.Code, w.Header().Get("Grpc-Status"), body, tc.status, tc.grpcStatus, tc.body)
			}
		})
	}
}
