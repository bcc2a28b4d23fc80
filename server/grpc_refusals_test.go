package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// grpcRouteProxy runs a proxy with one route to the gRPC backend b whose
// other keys (policies, fallback) are route, a YAML flow mapping's
// inside.
func grpcRouteProxy(t *testing.T, b *grpcBackend, route string) *Server {
	t.Helper()
	return startProxy(t, "h2c: true\nupstreams:\n  g:\n    protocol: h2c\n    health_checks: {enabled: false}\n    servers:\n"+grpcURLs(b)+
		"routes:\n  - {name: calls, match: {path_prefix: /}, upstream: g, "+route+"}\n")
}

// The proxy's own refusals before any server, by its policies, reach a
// gRPC client as the gRPC status that says why, with a message, not as an
// HTML page and an HTTP status the client can only call UNKNOWN.
func TestGRPCRefusalsAreStatuses(t *testing.T) {
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="app"`)
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "<html>log in first</html>")
	}))
	t.Cleanup(auth.Close)
	deadAuth := "http://" + freeAddr(t)
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	for _, tc := range []struct {
		name, route string
		payload     int
		want        codes.Code
		msg         string
		header      string // a metadata key the status must carry
	}{
		{"ip_filter", "policies: [{ip_filter: {deny: [127.0.0.0/8]}}]", 0, codes.PermissionDenied, "proxy: ", ""},
		{"basic_auth", "policies: [{basic_auth: {users: {alice: '" + string(hash) + "'}}}]", 0, codes.Unauthenticated, "proxy: ", "www-authenticate"},
		{"forward_auth refuses", "policies: [{forward_auth: {url: '" + auth.URL + "'}}]", 0, codes.Unauthenticated, "proxy: ", "www-authenticate"},
		{"forward_auth unreachable", "policies: [{forward_auth: {url: '" + deadAuth + "'}}]", 0, codes.Unavailable, "proxy: ", ""},
		{"max_body, a stream cut at the limit", "policies: [{max_body: 64}]", 1024, codes.ResourceExhausted, "proxy: the request is larger", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startGRPC(t, "a", "", "")
			p := grpcRouteProxy(t, b, tc.route)
			c := testpb.NewTestServiceClient(grpcDial(t, p, ""))
			var hdr, trl metadata.MD
			_, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, tc.payload)}},
				grpc.Header(&hdr), grpc.Trailer(&trl))
			s := status.Convert(err)
			if s.Code() != tc.want || !strings.HasPrefix(s.Message(), tc.msg) {
				t.Errorf("status %v %q, want %v", s.Code(), s.Message(), tc.want)
			}
			if tc.header != "" && len(hdr.Get(tc.header))+len(trl.Get(tc.header)) == 0 {
				t.Errorf("metadata %v %v lacks %s", hdr, trl, tc.header)
			}
			if tc.payload == 0 && b.calls.Load() != 0 {
				t.Errorf("the server got %d calls, want none", b.calls.Load())
			}
		})
	}
}

// A call whose declared length is over max_body is refused before any
// server sees it, with RESOURCE_EXHAUSTED in a trailers-only answer: HTTP
// 200, the status in the head, no page in the body.
func TestGRPCMaxBodyDeclaredLength(t *testing.T) {
	b := startGRPC(t, "a", "", "")
	p := grpcRouteProxy(t, b, "policies: [{max_body: 64}]")
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	frame := make([]byte, 5+100)
	frame[4] = 100
	req, _ := http.NewRequestWithContext(callCtx(t), "POST", "http://"+p.Addr()+"/grpc.testing.TestService/UnaryCall", bytes.NewReader(frame))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Grpc-Status") != "8" || len(body) != 0 || res.Header.Get("Content-Type") != "application/grpc" {
		t.Errorf("HTTP %d, grpc-status %q, content-type %q, body %q; want 200, 8, application/grpc and none",
			res.StatusCode, res.Header.Get("Grpc-Status"), res.Header.Get("Content-Type"), body)
	}
	if b.calls.Load() != 0 {
		t.Errorf("the server got %d calls, want none", b.calls.Load())
	}
	// The refusal reset one stream, not the connection the client's
	// other calls share.
	reused := false
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, _ = http.NewRequestWithContext(httptrace.WithClientTrace(callCtx(t), trace), "POST", "http://"+p.Addr()+"/grpc.testing.TestService/UnaryCall", bytes.NewReader(make([]byte, 5)))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	res, err = tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if got := res.Header.Get("Grpc-Status") + res.Trailer.Get("Grpc-Status"); got != "0" || !reused {
		t.Errorf("next call: grpc-status %q, connection reused %v; want 0 on the same connection", got, reused)
	}
}

// A route's fallback answers a gRPC call in gRPC: its status as the
// call's, its body as the message.
func TestGRPCFallbackIsAStatus(t *testing.T) {
	b := startGRPC(t, "a", "", "")
	b.url = "http://" + freeAddr(t) // nothing listens there
	p := grpcRouteProxy(t, b, `fallback: {status: 503, body: "back soon", headers: {Retry-After: "120"}}`)
	c := testpb.NewTestServiceClient(grpcDial(t, p, ""))
	var trl metadata.MD
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{}, grpc.Trailer(&trl))
	if s := status.Convert(err); s.Code() != codes.Unavailable || s.Message() != "back soon" {
		t.Errorf("status %v %q, want Unavailable \"back soon\"", s.Code(), s.Message())
	}
	if got := trl.Get("retry-after"); len(got) != 1 || got[0] != "120" {
		t.Errorf("retry-after metadata %q, want [120]", got)
	}
}
