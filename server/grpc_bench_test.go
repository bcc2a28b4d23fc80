//go:build unix

package server

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// BenchmarkGRPCUnary measures unary calls over one client connection, 16
// at a time, straight to a grpc-go server and through the proxy (h2c
// both sides). Client, proxy and server share the process, so cpu-µs/call
// is all three; the difference between the two is the proxy's cost
// (docs/performance.md, "gRPC").
func BenchmarkGRPCUnary(b *testing.B) {
	srv := startGRPC(b, "a", "", "")
	p := grpcProxy(b, "h2c: true\n", "h2c", "", "", srv)
	for _, tc := range []struct{ name, addr string }{
		{"direct", srv.url[len("http://"):]},
		{"proxy", p.Addr()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cc, err := grpc.NewClient("passthrough:///"+tc.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			c := testpb.NewTestServiceClient(cc)
			req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 128)}}
			if _, err := c.UnaryCall(context.Background(), req); err != nil {
				b.Fatal(err)
			}
			const workers = 16
			var next sync.WaitGroup
			calls := make(chan struct{}, b.N)
			for range b.N {
				calls <- struct{}{}
			}
			close(calls)
			cpu0 := cpuTime()
			start := time.Now()
			b.ResetTimer()
			for range workers {
				next.Go(func() {
					for range calls {
						if _, err := c.UnaryCall(context.Background(), req); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			next.Wait()
			b.StopTimer()
			elapsed, cpu := time.Since(start), cpuTime()-cpu0
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/call")
		})
	}
}
