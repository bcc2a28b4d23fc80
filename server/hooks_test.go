package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tbsphathuynh/proxy/config"
)

// A custom build's ModifyResponse sees and changes each server's answer,
// and its ErrorHandler answers in place of the proxy's own 502 and 503,
// on the fast path as on the usual one.
func TestServerHooks(t *testing.T) {
	live := backend(t, "live", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "from "+r.URL.Path)
	})
	cfg, err := config.Parse("t.yaml", []byte(`listen: 127.0.0.1:0
admin: {listen: ""}
logging: {access_log: "off"}
health_checks: {enabled: false}
servers: [{url: `+live.URL+`}]
upstreams:
  dead:
    servers: [{url: "http://127.0.0.1:1"}]
    health_checks: {enabled: false}
routes:
  - {match: {path_prefix: /dead}, upstream: dead}
`))
	if err != nil {
		t.Fatal(err)
	}
	var handled []string
	s, err := New(cfg, Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ModifyResponse: func(res *http.Response) error {
			if res.Request.URL.Path == "/refuse" {
				return errors.New("not this one")
			}
			res.Header.Set("X-Modified", "yes")
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			res.Body = io.NopCloser(strings.NewReader(strings.ToUpper(string(b))))
			res.ContentLength = -1
			res.Header.Del("Content-Length")
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, status int, err error) {
			handled = append(handled, fmt.Sprintf("%s %d", r.URL.Path, status))
			w.WriteHeader(status)
			io.WriteString(w, "custom error page")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	c := &http.Client{}
	code, body, h := get(t, c, "http://"+s.Addr()+"/page")
	if code != 200 || body != "FROM /PAGE" || h.Get("X-Modified") != "yes" {
		t.Errorf("modified answer: %d %q %v", code, body, h)
	}
	if code, body, _ := get(t, c, "http://"+s.Addr()+"/refuse"); code != 502 || body != "custom error page" {
		t.Errorf("answer ModifyResponse refused: %d %q", code, body)
	}
	if code, body, _ := get(t, c, "http://"+s.Addr()+"/dead/x"); code != 502 || body != "custom error page" {
		t.Errorf("no server reachable: %d %q", code, body)
	}
	want := "[/refuse 502 /dead/x 502]"
	if fmt.Sprint(handled) != want {
		t.Errorf("ErrorHandler saw %v, want %s", handled, want)
	}
}
