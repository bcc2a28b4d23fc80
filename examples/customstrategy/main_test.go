package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/config"
	"github.com/tbsphathuynh/proxy/server"
)

func TestCustomStrategyServesThroughTheProxy(t *testing.T) {
	var hits [2]int
	var srvs [2]*httptest.Server
	for i := range srvs {
		srvs[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits[i]++ }))
		defer srvs[i].Close()
	}
	cfg, err := config.Parse("custom.yaml", []byte(`listen: 127.0.0.1:0
admin: {listen: ""}
logging: {access_log: "off"}
health_checks: {enabled: false}
load_balancing: {strategy: first_available}
servers: [{url: `+srvs[0].URL+`}, {url: `+srvs[1].URL+`}]
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
	for range 10 {
		resp, err := http.Get("http://" + s.Addr() + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if hits[0] != 10 || hits[1] != 0 {
		t.Errorf("hits = %v, want all 10 on the first server", hits)
	}
}
