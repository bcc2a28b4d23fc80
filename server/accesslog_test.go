package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/internal/accesslog"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

func TestAccessLogLineHasTheFields(t *testing.T) {
	a := backend(t, "a", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) })
	file := filepath.Join(t.TempDir(), "access.log")
	p := startProxy(t, fmt.Sprintf("logging: {format: json, access_log: %s}\nhealth_checks: {enabled: false}\nservers: [{url: %s, name: app-1}]\n", file, a.URL))
	req, _ := http.NewRequest("GET", "http://"+p.Addr()+"/some/path?q=1", nil)
	req.Host = "shop.example.com"
	req.Header.Set("X-Request-Id", "req-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	var line map[string]any
	waitFor(t, "an access log line", func() bool {
		f, err := os.Open(file)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		return sc.Scan() && json.Unmarshal(sc.Bytes(), &line) == nil
	})
	want := map[string]any{
		"msg": "request", "method": "GET", "host": "shop.example.com", "path": "/some/path",
		"status": 200.0, "bytes": 5.0, "route": "default", "upstream": "default", "server": "app-1",
		"request_id": "req-42",
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("access log %s = %v, want %v (line %v)", k, line[k], v, line)
		}
	}
	for _, k := range []string{"time", "duration", "remote"} {
		if _, ok := line[k]; !ok {
			t.Errorf("access log has no %s: %v", k, line)
		}
	}
}

func TestAccessLogChosenFieldsAndSampling(t *testing.T) {
	if !slices.Equal(config.AccessLogFieldNames, accesslog.AccessLogFields) {
		t.Fatalf("config accepts fields %v, the access log writes %v", config.AccessLogFieldNames, accesslog.AccessLogFields)
	}
	ok := backend(t, "ok", nil)
	bad := backend(t, "bad", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	file := filepath.Join(t.TempDir(), "access.log")
	p := startProxy(t, fmt.Sprintf(`logging: {format: json, access_log: %s, access_log_fields: [status, path], access_log_sample: 0.001}
servers: [{url: %s}]
upstreams: {bad: {servers: [{url: %s}], health_checks: {enabled: false}}}
routes: [{match: {path_prefix: /bad}, upstream: bad}]
`, file, ok.URL, bad.URL))
	for range 200 {
		get(t, http.DefaultClient, "http://"+p.Addr()+"/ok")
	}
	for range 3 {
		get(t, http.DefaultClient, "http://"+p.Addr()+"/bad")
	}
	var lines []map[string]any
	waitFor(t, "the three error lines", func() bool {
		b, _ := os.ReadFile(file)
		lines = nil
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil {
				lines = append(lines, m)
			}
		}
		errs := 0
		for _, m := range lines {
			if m["status"] == 503.0 {
				errs++
			}
		}
		return errs == 3
	})
	if len(lines) > 3+10 {
		t.Errorf("%d lines for 200 successes at a 0.1%% sample", len(lines)-3)
	}
	for _, m := range lines {
		if _, ok := m["method"]; ok {
			t.Errorf("line has method, which was not chosen: %v", m)
		}
		if _, ok := m["path"]; !ok {
			t.Errorf("line lacks path: %v", m)
		}
	}
}

// A gRPC call's line carries its grpc_status, and a call that failed is
// logged whatever the sample, though HTTP calls it a 200.
func TestAccessLogGRPCStatus(t *testing.T) {
	b := startGRPC(t, "a", "", "")
	file := filepath.Join(t.TempDir(), "access.log")
	p := grpcProxy(t, "h2c: true\nlogging: {format: json, access_log: "+file+", access_log_fields: [status, grpc_status], access_log_sample: 0.001}\n", "h2c", "", "", b)
	c := testpb.NewTestServiceClient(grpcDial(t, p, ""))
	for range 100 {
		if _, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		_, err := c.UnaryCall(callCtx(t), &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound)}})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("call: %v, want NotFound", err)
		}
	}
	var lines []map[string]any
	waitFor(t, "the two failed calls' lines", func() bool {
		b, _ := os.ReadFile(file)
		lines = nil
		failed := 0
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil {
				lines = append(lines, m)
				if m["grpc_status"] == 5.0 {
					failed++
				}
			}
		}
		return failed == 2
	})
	for _, m := range lines {
		if m["status"] != 200.0 || m["grpc_status"] != 5.0 && m["grpc_status"] != 0.0 {
			t.Errorf("line %v, want status 200 and grpc_status 0 or 5", m)
		}
	}
	if len(lines) > 2+10 {
		t.Errorf("%d lines for 100 successes at a 0.1%% sample", len(lines)-2)
	}
}
