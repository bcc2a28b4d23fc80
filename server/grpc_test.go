package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/upstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Every kind of call passes through with its messages, headers and
// trailers (binary metadata too), to h2c and to h2 (TLS) servers, from
// clients over h2c and over TLS.
func TestGRPCCallKinds(t *testing.T) {
	cert, key := selfSigned(t)
	for _, tc := range []struct {
		name, protocol string
		tlsUpstream    bool
		tlsClient      bool
	}{
		{"h2c upstream, h2c client", "h2c", false, false},
		{"h2c upstream, TLS client", "h2c", false, true},
		{"h2 upstream, h2c client", "h2", true, false},
		{"h2 upstream, TLS client", "h2", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b *grpcBackend
			ca := ""
			if tc.tlsUpstream {
				b, ca = startGRPC(t, "a", cert, key), cert
			} else {
				b = startGRPC(t, "a", "", "")
			}
			top, clientCA := "h2c: true\n", ""
			if tc.tlsClient {
				top, clientCA = "tls: {cert_file: "+cert+", key_file: "+key+"}\n", cert
			}
			p := grpcProxy(t, top, tc.protocol, ca, "", b)
			c := testpb.NewTestServiceClient(grpcDial(t, p, clientCA))
			checkCallKinds(t, c)
		})
	}
}

func checkCallKinds(t *testing.T, c testpb.TestServiceClient) {
	t.Helper()
	ctx := callCtx(t)

	// Unary, with header and trailer metadata.
	var header, trailer metadata.MD
	res, err := c.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("ping")}},
		grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatalf("unary: %v", err)
	}
	if res.Hostname != "a" || string(res.GetPayload().GetBody()) != "ping" {
		t.Errorf("unary answer %q from %q, want ping from a", res.GetPayload().GetBody(), res.Hostname)
	}
	if got := header.Get("x-backend"); len(got) != 1 || got[0] != "a" {
		t.Errorf("header x-backend = %q, want [a]", got)
	}
	if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "t" {
		t.Errorf("trailer x-trailer = %q, want [t]", got)
	}
	if got := trailer.Get("x-trailer-bin"); len(got) != 1 || got[0] != string([]byte{0, 1, 0xfe, 0xff}) {
		t.Errorf("binary trailer = %q, want the four bytes sent", got)
	}

	// A server's error status and message reach the client as sent.
	_, err = c.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "no such order: ünïcode"}})
	if s := status.Convert(err); s.Code() != codes.NotFound || s.Message() != "no such order: ünïcode" {
		t.Errorf("error status = %v %q, want NotFound with the server's message", s.Code(), s.Message())
	}

	// Server streaming.
	params := []*testpb.ResponseParameters{{Size: 10}, {Size: 100_000}, {Size: 0}, {Size: 7}}
	ss, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: params})
	if err != nil {
		t.Fatalf("server streaming: %v", err)
	}
	for i, p := range params {
		m, err := ss.Recv()
		if err != nil {
			t.Fatalf("server streaming, message %d: %v", i, err)
		}
		if len(m.GetPayload().GetBody()) != int(p.Size) {
			t.Errorf("message %d has %d bytes, want %d", i, len(m.GetPayload().GetBody()), p.Size)
		}
	}
	if _, err := ss.Recv(); err != io.EOF {
		t.Fatalf("server streaming end: %v, want EOF", err)
	}
	if got := ss.Trailer().Get("x-count"); len(got) != 1 || got[0] != "4" {
		t.Errorf("server streaming trailer x-count = %q, want [4]", got)
	}

	// Client streaming.
	cs, err := c.StreamingInputCall(ctx)
	if err != nil {
		t.Fatalf("client streaming: %v", err)
	}
	for _, n := range []int{1, 20, 300, 40_000} {
		if err := cs.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, n)}}); err != nil {
			t.Fatalf("client streaming send: %v", err)
		}
	}
	sum, err := cs.CloseAndRecv()
	if err != nil {
		t.Fatalf("client streaming: %v", err)
	}
	if sum.AggregatedPayloadSize != 40_321 {
		t.Errorf("client streaming sum = %d, want 40321", sum.AggregatedPayloadSize)
	}

	// Bidirectional, in lock step: each answer must come before the next
	// message is sent, so nothing may wait for the request stream's end.
	bs, err := c.FullDuplexCall(ctx)
	if err != nil {
		t.Fatalf("bidi: %v", err)
	}
	for i := range 3 {
		body := []byte(fmt.Sprintf("message %d", i))
		if err := bs.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
			t.Fatalf("bidi send: %v", err)
		}
		m, err := bs.Recv()
		if err != nil {
			t.Fatalf("bidi recv: %v", err)
		}
		if !bytes.Equal(m.GetPayload().GetBody(), body) {
			t.Errorf("bidi echo %q, want %q", m.GetPayload().GetBody(), body)
		}
	}
	bs.CloseSend()
	if _, err := bs.Recv(); err != io.EOF {
		t.Fatalf("bidi end: %v, want EOF", err)
	}
	if got := bs.Trailer().Get("x-echoed"); len(got) != 1 || got[0] != "3" {
		t.Errorf("bidi trailer x-echoed = %q, want [3]", got)
	}
}

// The proxy's own failures reach a gRPC client as gRPC statuses with a
// message, not as an HTTP status it can only guess at.
func TestGRPCProxyErrorsAreStatuses(t *testing.T) {
	t.Run("no server reachable", func(t *testing.T) {
		b := startGRPC(t, "a", "", "")
		b.url = "http://" + freeAddr(t) // nothing listens there
		p := grpcProxy(t, "h2c: true\n", "h2c", "", "", b)
		c := testpb.NewTestServiceClient(grpcDial(t, p, ""))
		_, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{})
		if s := status.Convert(err); s.Code() != codes.Unavailable || !strings.HasPrefix(s.Message(), "proxy: ") {
			t.Errorf("status %v %q, want Unavailable from the proxy", s.Code(), s.Message())
		}
	})
	t.Run("no route", func(t *testing.T) {
		b := startGRPC(t, "a", "", "")
		p := startProxy(t, "h2c: true\nupstreams:\n  g:\n    protocol: h2c\n    health_checks: {enabled: false}\n    servers:\n"+grpcURLs(b)+
			"routes:\n  - {match: {path_prefix: /other.Service/}, upstream: g}\n")
		c := testpb.NewTestServiceClient(grpcDial(t, p, ""))
		_, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{})
		if s := status.Convert(err); s.Code() != codes.Unimplemented || !strings.HasPrefix(s.Message(), "proxy: ") {
			t.Errorf("status %v %q, want Unimplemented from the proxy", s.Code(), s.Message())
		}
	})
	t.Run("rate limited", func(t *testing.T) {
		b := startGRPC(t, "a", "", "")
		p := grpcProxy(t, "h2c: true\n", "h2c", "", "    rate_limit: {requests_per_second: 0.001, burst: 1}\n", b)
		c := testpb.NewTestServiceClient(grpcDial(t, p, ""))
		if _, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{}); err != nil {
			t.Fatalf("first call: %v", err)
		}
		_, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{})
		if s := status.Convert(err); s.Code() != codes.ResourceExhausted {
			t.Errorf("status %v %q, want ResourceExhausted", s.Code(), s.Message())
		}
	})
}

// A per-try timeout that fires before the server answers ends the call
// with DEADLINE_EXCEEDED from the proxy, and the server's call is
// canceled.
func TestGRPCPerTryTimeout(t *testing.T) {
	b := startGRPC(t, "a", "", "")
	p := grpcProxy(t, "h2c: true\n", "h2c", "", "    retries: {per_try_timeout: 100ms}\n", b)
	c := testpb.NewTestServiceClient(grpcDial(t, p, ""))
	_, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("block")}})
	if s := status.Convert(err); s.Code() != codes.DeadlineExceeded || !strings.HasPrefix(s.Message(), "proxy: ") {
		t.Errorf("status %v %q, want DeadlineExceeded from the proxy", s.Code(), s.Message())
	}
	waitBlocked(t, b, context.Canceled)
}

// grpc-timeout bounds the call at the proxy whatever the client does: a
// client that sent one and then waits for ever gets DEADLINE_EXCEEDED.
func TestGRPCTimeoutHeader(t *testing.T) {
	b := startGRPC(t, "a", "", "")
	p := grpcProxy(t, "h2c: true\n", "h2c", "", "", b)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	// A call first, so that the connection to the server is open and the
	// timed call's 150 ms are the server's, not a loaded machine's dial.
	c := testpb.NewTestServiceClient(grpcDial(t, p, ""))
	if _, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	// A UnaryCall whose payload is "block": field 3 (payload) holding
	// field 2 (body).
	msg := []byte{0x1a, 7, 0x12, 5, 'b', 'l', 'o', 'c', 'k'}
	frame := append([]byte{0, 0, 0, 0, byte(len(msg))}, msg...)
	req, _ := http.NewRequestWithContext(callCtx(t), "POST", "http://"+p.Addr()+"/grpc.testing.TestService/UnaryCall", bytes.NewReader(frame))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Grpc-Timeout", "150m")
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	got := res.Header.Get("Grpc-Status") + res.Trailer.Get("Grpc-Status")
	if res.StatusCode != 200 || got != "4" {
		t.Errorf("HTTP %d, grpc-status %q; want 200 and 4 (DEADLINE_EXCEEDED)", res.StatusCode, got)
	}
	waitBlocked(t, b, nil)
}

// waitBlocked waits for a blocked call on b to end, with want as its
// context's error unless want is nil.
func waitBlocked(t *testing.T, b *grpcBackend, want error) {
	t.Helper()
	select {
	case err := <-b.blocked:
		if want != nil && !errors.Is(err, want) {
			t.Errorf("the server's call ended with %v, want %v", err, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the server's call was never canceled")
	}
}

// A client that cancels its call has the server's stream reset at once:
// the server sees its call's context canceled.
func TestGRPCClientCancelReachesServer(t *testing.T) {
	b := startGRPC(t, "a", "", "")
	p := grpcProxy(t, "h2c: true\n", "h2c", "", "", b)
	c := testpb.NewTestServiceClient(grpcDial(t, p, ""))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("block")}})
		done <- err
	}()
	select {
	case <-b.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the call never reached the server")
	}
	cancel()
	waitBlocked(t, b, context.Canceled)
	if s := status.Convert(<-done); s.Code() != codes.Canceled {
		t.Errorf("client status %v, want Canceled", s.Code())
	}
}

// A server that dies in the middle of a stream, between messages, ends
// the client's call with UNAVAILABLE after the messages it did send.
func TestGRPCServerKilledMidStream(t *testing.T) {
	b := startGRPC(t, "a", "", "")
	p := grpcProxy(t, "h2c: true\n", "h2c", "", "", b)
	c := testpb.NewTestServiceClient(grpcDial(t, p, ""))
	ss, err := c.StreamingOutputCall(callCtx(t), &testpb.StreamingOutputCallRequest{
		Payload:            &testpb.Payload{Body: []byte("hold")},
		ResponseParameters: []*testpb.ResponseParameters{{Size: 3}, {Size: 5}, {Size: 8}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := ss.Recv(); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	b.kill()
	_, err = ss.Recv()
	if s := status.Convert(err); s.Code() != codes.Unavailable || !strings.HasPrefix(s.Message(), "proxy: ") {
		t.Errorf("status %v %q, want Unavailable from the proxy", s.Code(), s.Message())
	}
}

// Calls are balanced one by one, not by connection: many calls over one
// client connection spread evenly over three servers.
func TestGRPCBalancesEachCall(t *testing.T) {
	bs := []*grpcBackend{startGRPC(t, "a", "", ""), startGRPC(t, "b", "", ""), startGRPC(t, "c", "", "")}
	p := grpcProxy(t, "h2c: true\n", "h2c", "", "", bs...)
	c := testpb.NewTestServiceClient(grpcDial(t, p, ""))
	// The 10,000 calls; 3,000 under the race detector, which
	// slows each call many times over and races nothing more in 10,000.
	calls := 10000
	if raceEnabled {
		calls = 3000
	}
	for i := range calls {
		// A deadline per call, generous, so a loaded machine slows the
		// test down rather than fail it.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
		cancel()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	for _, b := range bs {
		if n := int(b.calls.Load()); n < calls/3*9/10 || n > calls/3*11/10 {
			t.Errorf("server %s got %d of %d calls, want %d ±10%%", b.name, n, calls, calls/3)
		}
	}
}

// proxy_grpc_requests_total counts calls by the status that ended them,
// the server's or the proxy's own.
func TestGRPCRequestsMetric(t *testing.T) {
	b := startGRPC(t, "a", "", "")
	p := grpcProxy(t, "h2c: true\nadmin: {listen: 127.0.0.1:0}\n", "h2c", "", "", b)
	c := testpb.NewTestServiceClient(grpcDial(t, p, ""))
	ctx := callCtx(t)
	for range 3 {
		if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	c.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound)}})
	ss, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := ss.Recv(); err != nil {
			break
		}
	}
	b.srv.Stop()
	c.UnaryCall(ctx, &testpb.SimpleRequest{})

	want := map[string]float64{"0": 4, "5": 1, "14": 1}
	var got map[string]float64
	deadline := time.Now().Add(30 * time.Second)
	for {
		mfs := scrape(t, p.AdminAddr())
		got = map[string]float64{}
		for code := range want {
			got[code], _ = value(mfs, "proxy_grpc_requests_total", map[string]string{"route": "calls", "upstream": "g", "grpc_status": code})
		}
		if fmt.Sprint(got) == fmt.Sprint(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("proxy_grpc_requests_total by grpc_status = %v, want %v", got, want)
	}
}

// gRPC health checks take a server that reports NOT_SERVING out of the
// pool, calls go to the others, and it comes back when it serves again.
func TestGRPCHealthChecks(t *testing.T) {
	const service = "grpc.testing.TestService"
	a, b := startGRPC(t, "a", "", ""), startGRPC(t, "b", "", "")
	for _, x := range []*grpcBackend{a, b} {
		x.health.SetServingStatus(service, healthpb.HealthCheckResponse_SERVING)
	}
	p := grpcProxy(t, "h2c: true\n", "h2c", "",
		"    health_checks: {grpc: {service: "+service+"}, interval: 1s, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 1}\n", a, b)
	server := func(name string) *upstream.Server {
		for _, s := range p.rt.Load().upstreams["g"].pool.Servers {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no server %s", name)
		return nil
	}
	sb := server("b")
	checked := func() bool { c, ok := sb.LastCheck(); return ok && c.Result == "SERVING" }
	waitFor(t, "a first check of b", checked)

	b.health.SetServingStatus(service, healthpb.HealthCheckResponse_NOT_SERVING)
	waitFor(t, "b out of the pool", func() bool { return !sb.Healthy() })
	if c, _ := sb.LastCheck(); c.Result != "NOT_SERVING" {
		t.Errorf("b's last check says %q, want NOT_SERVING", c.Result)
	}
	c := testpb.NewTestServiceClient(grpcDial(t, p, ""))
	for range 10 {
		res, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Hostname != "a" {
			t.Fatalf("a call went to %s, which is out of the pool", res.Hostname)
		}
	}

	b.health.SetServingStatus(service, healthpb.HealthCheckResponse_SERVING)
	waitFor(t, "b back in the pool", sb.Healthy)
}

// Flow control holds end to end: a client that stops reading holds the
// server back, with a few windows' worth in flight, not the whole stream
// gathered in the proxy.
func TestGRPCSlowReaderHoldsServerBack(t *testing.T) {
	b := startGRPC(t, "a", "", "")
	p := grpcProxy(t, "h2c: true\n", "h2c", "", "", b)
	c := testpb.NewTestServiceClient(grpcDial(t, p, ""))
	const messages, size = 256, 1 << 20 // 256 MiB in all
	params := make([]*testpb.ResponseParameters, messages)
	for i := range params {
		params[i] = &testpb.ResponseParameters{Size: size}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ss, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: params})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.Recv(); err != nil {
		t.Fatal(err)
	}
	// Wait for the server to settle: no message begun for 100 polls in
	// a row. A loaded machine can only make it settle later, or seem to
	// settle early with fewer sent; a proxy that read ahead without
	// bound lets the server send all of them.
	last, still := int64(-1), 0
	deadline := time.Now().Add(60 * time.Second)
	for still < 100 && time.Now().Before(deadline) {
		n := b.sent.Load()
		if n == last {
			still++
		} else {
			last, still = n, 0
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Windows on the way: the client's (grpc-go grows it up to 16 MiB),
	// the proxy's to the client and from the server (4 MiB a stream),
	// the server's send buffer.
	n := b.sent.Load()
	t.Logf("the server began %d messages of 1 MiB", n)
	if n > 40 {
		t.Errorf("the server sent %d MiB to a client that read 1 MiB, want the stream held back by flow control", n)
	}
}

// A call whose server cannot be connected to goes to another server: not
// a byte of it was sent, so trying again cannot do anything twice. So it
// does with retry_on, which keeps a copy of the call's stream as it
// is sent.
func TestGRPCRetriesACallNeverSent(t *testing.T) {
	for _, retries := range []string{"", "    retries: {attempts: 1, retry_on: [unavailable]}\n"} {
		live, dead := startGRPC(t, "live", "", ""), startGRPC(t, "dead", "", "")
		dead.url = "http://" + freeAddr(t) // nothing listens there
		p := grpcProxy(t, "h2c: true\n", "h2c", "", retries, dead, live)
		c := testpb.NewTestServiceClient(grpcDial(t, p, ""))
		for i := range 4 {
			res, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("x")}})
			if err != nil {
				t.Fatalf("%q: call %d: %v", retries, i, err)
			}
			if res.Hostname != "live" || string(res.Payload.GetBody()) != "x" {
				t.Errorf("%q: call %d answered by %q with %q", retries, i, res.Hostname, res.Payload.GetBody())
			}
		}
	}
}
