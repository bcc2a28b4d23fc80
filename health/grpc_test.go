package health

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestGRPCProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	defer srv.Stop()
	hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)

	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	target := "http://" + ln.Addr().String() + "/health"
	for _, tc := range []struct {
		service string
		ok      bool
		result  string
	}{
		{"", true, "SERVING"}, // the server as a whole
		{"up", true, "SERVING"},
		{"down", false, "NOT_SERVING"},
		{"unknown", false, `grpc-status "5"`},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ok, result := GRPCProbe(tr, tc.service)(ctx, target)
		cancel()
		if ok != tc.ok || result != tc.result {
			t.Errorf("service %q: %v %q, want %v %q", tc.service, ok, result, tc.ok, tc.result)
		}
	}
}

func TestServingStatusRejectsBrokenAnswers(t *testing.T) {
	for name, body := range map[string][]byte{
		"empty":            nil,
		"compressed":       {1, 0, 0, 0, 0},
		"cut short":        {0, 0, 0, 0, 9, 8},
		"truncated varint": {0, 0, 0, 0, 2, 8, 0x80},
		"bad length":       {0, 0, 0, 0, 3, 0x12, 0xff, 1},
		"wire type 7":      {0, 0, 0, 0, 1, 0x0f},
	} {
		if _, err := servingStatus(body); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if st, err := servingStatus([]byte{0, 0, 0, 0, 4, 0x12, 0, 8, 2}); err != nil || st != 2 {
		t.Errorf("status after an unknown field = %d, %v; want 2", st, err)
	}
}
