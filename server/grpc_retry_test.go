package server

import (
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// goingAway starts two servers, one ending its calls UNAVAILABLE as f
// says, and a client through a proxy with retries (more YAML for the
// upstream, indented by four spaces).
func goingAway(t *testing.T, f *failure, retries string) (down, up *grpcBackend, c testpb.TestServiceClient) {
	t.Helper()
	down, up = startGRPC(t, "down", "", ""), startGRPC(t, "up", "", "")
	down.fail.Store(f)
	p := grpcProxy(t, "h2c: true\n", "h2c", "", "    load_balancing: {strategy: round_robin}\n    retries: "+retries+"\n", down, up)
	return down, up, testpb.NewTestServiceClient(grpcDial(t, p, ""))
}

// A call a server ends with UNAVAILABLE before answering anything goes to
// another server when retry_on lists unavailable, whether the status came
// trailers-only or after a head; without retry_on the client sees the
// server's UNAVAILABLE, and no call is made twice.
func TestGRPCRetryOnUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       failure
		retries string
		retried bool
	}{
		{"trailers-only, retry_on", failure{trailersOnly: true}, "{attempts: 1, retry_on: [unavailable]}", true},
		{"head then trailers, retry_on", failure{}, "{attempts: 1, retry_on: [unavailable]}", true},
		{"trailers-only, no retry_on", failure{trailersOnly: true}, "{attempts: 1}", false},
		{"head then trailers, no retry_on", failure{}, "{attempts: 1}", false},
		{"negative pushback", failure{trailersOnly: true, pushback: "-1"}, "{attempts: 1, retry_on: [unavailable]}", false},
		{"malformed pushback", failure{trailersOnly: true, pushback: "1.5"}, "{attempts: 1, retry_on: [unavailable]}", false},
		{"pushback past the deadline", failure{trailersOnly: true, pushback: "600000"}, "{attempts: 1, retry_on: [unavailable]}", false},
		{"stream longer than max_body_bytes", failure{trailersOnly: true}, "{attempts: 1, retry_on: [unavailable], max_body_bytes: 16}", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			down, up, c := goingAway(t, &tc.f, tc.retries)
			const calls = 4
			failed := 0
			for i := range calls {
				res, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 64)}})
				switch s := status.Convert(err); {
				case err == nil && res.Hostname == "up":
				case s.Code() == codes.Unavailable && s.Message() == "down is going away":
					failed++
				default:
					t.Fatalf("call %d: %v %v", i, res, err)
				}
			}
			if down.calls.Load() == 0 {
				t.Fatal("no call went to the server going away")
			}
			if tc.retried {
				if failed > 0 || up.calls.Load() != calls {
					t.Errorf("%d calls failed, %d reached up; want none and %d", failed, up.calls.Load(), calls)
				}
				return
			}
			if n := down.calls.Load(); failed != int(n) || up.calls.Load()+n != calls {
				t.Errorf("%d calls failed, down got %d and up %d; want every call down got failed, none made twice", failed, n, up.calls.Load())
			}
		})
	}
}

// A server's pushback is waited before the retry.
func TestGRPCRetryWaitsForPushback(t *testing.T) {
	down, up, c := goingAway(t, &failure{trailersOnly: true, pushback: "150"}, "{attempts: 1, retry_on: [unavailable]}")
	for i := range 2 {
		before := down.calls.Load()
		start := time.Now()
		if _, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if d := time.Since(start); down.calls.Load() > before && d < 150*time.Millisecond {
			t.Errorf("call %d was retried after %v, before the server's pushback of 150ms", i, d)
		}
	}
	if down.calls.Load() == 0 || up.calls.Load() != 2 {
		t.Errorf("down got %d calls, up %d; want at least 1 and 2", down.calls.Load(), up.calls.Load())
	}
}

// A call whose server sent a message before UNAVAILABLE is not retried,
// retry_on or not: the client has the message, and only the server's
// status can follow it.
func TestGRPCNoRetryAfterAMessage(t *testing.T) {
	down, up, c := goingAway(t, &failure{}, "{attempts: 1, retry_on: [unavailable]}")
	const calls = 4
	failed := 0
	for i := range calls {
		var trl metadata.MD
		st, err := c.StreamingOutputCall(callCtx(t), &testpb.StreamingOutputCallRequest{
			ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}}, grpc.Trailer(&trl))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			_, err = st.Recv()
			if err != nil {
				break
			}
			n++
		}
		switch s := status.Convert(err); {
		case err == io.EOF && n == 1:
		case s.Code() == codes.Unavailable && strings.HasPrefix(s.Message(), "down") && n == 1:
			failed++
		default:
			t.Fatalf("call %d: %d messages, then %v", i, n, err)
		}
	}
	if n := down.calls.Load(); n == 0 || failed != int(n) || up.calls.Load()+n != calls {
		t.Errorf("%d calls failed, down got %d and up %d; want every call down got failed, none made twice", failed, n, up.calls.Load())
	}
}
