package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/server"
)

func TestSignPolicyServesThroughTheProxy(t *testing.T) {
	key := "0123456789abcdef0123"
	seen := make(chan string, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-Sig")
	}))
	defer backend.Close()
	cfg, err := config.Parse("custom.yaml", []byte(`listen: 127.0.0.1:0
admin: {listen: ""}
logging: {access_log: "off"}
health_checks: {enabled: false}
servers: [{url: `+backend.URL+`}]
routes:
  - match: {path_prefix: /}
    upstream: default
    policies:
      - sign: {key: `+key+`, header: X-Sig}
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(cfg, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	}()
	before := time.Now()
	res, err := http.Get("http://" + s.Addr() + "/orders/7")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	got := <-seen
	ts, _, _ := strings.Cut(got, ":")
	found := false
	for sec := before.Unix(); sec <= time.Now().Unix(); sec++ {
		if Sign([]byte(key), "GET", "/orders/7", time.Unix(sec, 0)) == got {
			found = true
		}
	}
	if !found {
		t.Errorf("the server got signature %q (timestamp %s), not the policy's", got, ts)
	}
}

// The policy's block is checked like the proxy's own keys.
func TestSignPolicyConfigErrors(t *testing.T) {
	_, err := config.Parse("custom.yaml", []byte(`servers: [{url: "http://127.0.0.1:1"}]
routes:
  - match: {path_prefix: /}
    upstream: default
    policies:
      - sign: {key: short, heder: X-Sig}
`))
	for _, want := range []string{
		`custom.yaml:6:28: routes[0].policies[0].sign.heder: unknown key, did you mean "header"?`,
		`custom.yaml:6:15: routes[0].policies[0].sign: key must be at least 16 characters`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors\n%v\nlack %s", err, want)
		}
	}
}
