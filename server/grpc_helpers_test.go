package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// grpcBackend is a real grpc-go server with the interop TestService and
// the standard health service, on loopback, plain (h2c) or with TLS.
type grpcBackend struct {
	testpb.UnimplementedTestServiceServer
	name   string
	url    string
	srv    *grpc.Server
	health *health.Server
	calls  atomic.Int64
	// sent counts the messages StreamingOutputCall began to send.
	sent atomic.Int64

	// blocked receives the context error a call asked to block ("block")
	// saw when it ended; started is told when it begins.
	started chan struct{}
	blocked chan error
	// hold keeps a "hold" stream open after its first messages until
	// closed.
	hold chan struct{}
	// fail, when set, makes its calls end UNAVAILABLE.
	fail atomic.Pointer[failure]

	mu    sync.Mutex
	conns []net.Conn
}

// startGRPC starts a gRPC server named name; certFile and keyFile, when
// set, make it serve TLS (h2 through ALPN).
func startGRPC(t testing.TB, name, certFile, keyFile string) *grpcBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &grpcBackend{name: name, started: make(chan struct{}, 16), blocked: make(chan error, 16), hold: make(chan struct{})}
	var opts []grpc.ServerOption
	scheme := "http"
	if certFile != "" {
		c, err := credentials.NewServerTLSFromFile(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, grpc.Creds(c))
		scheme = "https"
	}
	b.url = scheme + "://" + ln.Addr().String()
	b.srv = grpc.NewServer(opts...)
	testpb.RegisterTestServiceServer(b.srv, b)
	b.health = health.NewServer()
	healthpb.RegisterHealthServer(b.srv, b.health)
	go b.srv.Serve(&trackingListener{Listener: ln, b: b})
	t.Cleanup(func() {
		b.closeHold()
		b.srv.Stop()
	})
	return b
}

// trackingListener keeps the connections it accepts, so a test can cut
// them as a crashing server would.
type trackingListener struct {
	net.Listener
	b *grpcBackend
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.b.mu.Lock()
		l.b.conns = append(l.b.conns, c)
		l.b.mu.Unlock()
	}
	return c, err
}

// kill closes the server's listener and every connection it accepted,
// with no GOAWAY or stream reset: a process that died.
func (b *grpcBackend) kill() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.Close()
	}
}

var closeHoldOnce sync.Map

func (b *grpcBackend) closeHold() {
	if _, loaded := closeHoldOnce.LoadOrStore(b, true); !loaded {
		close(b.hold)
	}
}

// failure is how a backend going away ends its calls: UNAVAILABLE,
// trailers-only or after a head of its own, with a pushback or not; a
// server-streaming call after its first message.
type failure struct {
	trailersOnly bool
	pushback     string
}

func (b *grpcBackend) unavailable(ctx context.Context, f *failure) error {
	if f.pushback != "" {
		grpc.SetTrailer(ctx, metadata.Pairs("grpc-retry-pushback-ms", f.pushback))
	}
	return status.Error(codes.Unavailable, b.name+" is going away")
}

func (b *grpcBackend) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	b.calls.Add(1)
	if f := b.fail.Load(); f != nil {
		if !f.trailersOnly {
			// A head of its own sent ahead, the status then comes in
			// trailers.
			grpc.SendHeader(ctx, metadata.Pairs("x-backend", b.name))
		}
		return nil, b.unavailable(ctx, f)
	}
	grpc.SetHeader(ctx, metadata.Pairs("x-backend", b.name))
	grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t", "x-trailer-bin", string([]byte{0, 1, 0xfe, 0xff})))
	if string(req.GetPayload().GetBody()) == "block" {
		b.started <- struct{}{}
		<-ctx.Done()
		b.blocked <- ctx.Err()
		return nil, ctx.Err()
	}
	if s := req.GetResponseStatus(); s != nil {
		return nil, status.Error(codes.Code(s.Code), s.Message)
	}
	return &testpb.SimpleResponse{Hostname: b.name, Payload: req.GetPayload()}, nil
}

func (b *grpcBackend) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	b.calls.Add(1)
	stream.SetTrailer(metadata.Pairs("x-count", fmt.Sprint(len(req.ResponseParameters))))
	if f := b.fail.Load(); f != nil {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
			return err
		}
		return b.unavailable(stream.Context(), f)
	}
	for i, p := range req.ResponseParameters {
		b.sent.Add(1)
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, p.Size)}}); err != nil {
			return err
		}
		if i == 1 && string(req.GetPayload().GetBody()) == "hold" {
			select {
			case <-b.hold:
			case <-stream.Context().Done():
			}
			return errors.New("held")
		}
	}
	return nil
}

func (b *grpcBackend) StreamingInputCall(stream testpb.TestService_StreamingInputCallServer) error {
	b.calls.Add(1)
	var sum int32
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: sum})
		}
		if err != nil {
			return err
		}
		sum += int32(len(m.GetPayload().GetBody()))
	}
}

func (b *grpcBackend) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	b.calls.Add(1)
	n := 0
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			stream.SetTrailer(metadata.Pairs("x-echoed", fmt.Sprint(n)))
			return nil
		}
		if err != nil {
			return err
		}
		n++
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: m.GetPayload()}); err != nil {
			return err
		}
	}
}

// grpcURLs renders YAML server entries for gRPC backends.
func grpcURLs(bs ...*grpcBackend) string {
	var s strings.Builder
	for _, b := range bs {
		fmt.Fprintf(&s, "      - {url: %s, name: %s}\n", b.url, b.name)
	}
	return s.String()
}

// grpcProxy runs a proxy with one route to upstream g of the backends,
// speaking protocol to them; extra is more YAML for the upstream, each
// line indented by four spaces. caFile is trusted for h2 (servers[].tls).
func grpcProxy(t testing.TB, top, protocol, caFile, extra string, bs ...*grpcBackend) *Server {
	t.Helper()
	servers := grpcURLs(bs...)
	if caFile != "" {
		servers = strings.ReplaceAll(servers, "}\n", ", tls: {ca_file: "+caFile+"}}\n")
	}
	if !strings.Contains(extra, "health_checks:") {
		extra += "    health_checks: {enabled: false}\n"
	}
	return startProxy(t, top+"upstreams:\n  g:\n    protocol: "+protocol+"\n"+extra+"    servers:\n"+servers+
		"routes:\n  - {name: calls, match: {path_prefix: /}, upstream: g}\n")
}

// grpcDial opens one gRPC client connection to the proxy: h2c, or TLS
// trusting caFile when it is set.
func grpcDial(t testing.TB, p *Server, caFile string) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(pem)
		creds = credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	}
	cc, err := grpc.NewClient("passthrough:///"+p.Addr(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// callCtx is a generous deadline for a call that should succeed: it only
// keeps a broken test from hanging.
func callCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
