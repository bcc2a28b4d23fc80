package admin

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestPostNeedsToken(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		sent     string
		wantCode int
	}{
		{"loopback, no token configured: open", Options{Loopback: true}, "", 200},
		{"loopback, token configured, none sent", Options{Loopback: true, Token: "s3cret"}, "", 401},
		{"loopback, wrong token", Options{Loopback: true, Token: "s3cret"}, "guess", 401},
		{"loopback, token prefix", Options{Loopback: true, Token: "s3cret"}, "s3cre", 401},
		{"loopback, right token", Options{Loopback: true, Token: "s3cret"}, "s3cret", 200},
		{"network, no token configured: closed", Options{}, "", 401},
		{"network, no token configured, any sent", Options{}, "x", 401},
		{"network, wrong token", Options{Token: "s3cret"}, "nope", 401},
		{"network, right token", Options{Token: "s3cret"}, "s3cret", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.opts)
			code, body := f.do(t, "POST", "/api/reload", tt.sent)
			if code != tt.wantCode {
				t.Fatalf("reload: %d %q, want %d", code, body, tt.wantCode)
			}
			wantReloads := 0
			if tt.wantCode == 200 {
				wantReloads = 1
			}
			if f.state.reloads != wantReloads {
				t.Errorf("State.Reload called %d times, want %d", f.state.reloads, wantReloads)
			}
			if code, _ := f.do(t, "POST", "/api/upstreams/api/servers/a/drain", tt.sent); code != tt.wantCode {
				t.Errorf("drain: %d, want %d", code, tt.wantCode)
			}
			// Reads stay open: dashboards and scrapers carry no token.
			if code, _ := f.do(t, "GET", "/api/upstreams", ""); code != 200 {
				t.Errorf("GET /api/upstreams: %d", code)
			}
		})
	}
}

func TestUnauthorizedAnswer(t *testing.T) {
	f := newFixture(t, Options{Token: "s3cret"})
	req, _ := http.NewRequest("POST", f.srv.URL+"/api/reload", nil)
	req.Header.Set("Authorization", "Basic czNjcmV0")
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("%d, WWW-Authenticate %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
}

func TestReloadError(t *testing.T) {
	f := newFixture(t, Options{Loopback: true})
	f.state.reloadErr = errors.New("config.yaml:3:5: unknown key \"strategi\" (did you mean \"strategy\"?)")
	code, body := f.do(t, "POST", "/api/reload", "")
	if code != 400 || body != f.state.reloadErr.Error()+"\n" {
		t.Errorf("%d %q", code, body)
	}
}

func TestDrainAndEnable(t *testing.T) {
	f := newFixture(t, Options{Token: "t"})
	steps := []struct {
		path string
		code int
	}{
		{"/api/upstreams/api/servers/a/drain", 200},
		{"/api/upstreams/api/servers/a/enable", 200},
		{"/api/upstreams/api/servers/b/drain", 200},
		{"/api/upstreams/api/servers/zz/drain", 404},
		{"/api/upstreams/nope/servers/a/enable", 404},
		{"/api/upstreams/api/servers/a/explode", 404},
	}
	for _, s := range steps {
		if code, body := f.do(t, "POST", s.path, "t"); code != s.code {
			t.Errorf("POST %s: %d %q, want %d", s.path, code, body, s.code)
		}
	}
	want := []string{"api/a=true", "api/a=false", "api/b=true"}
	if strings.Join(f.state.drains, " ") != strings.Join(want, " ") {
		t.Errorf("State.SetDrained calls %v, want %v", f.state.drains, want)
	}
	if code, _ := f.do(t, "GET", "/api/upstreams/api/servers/a/drain", "t"); code != 405 && code != 404 {
		t.Errorf("GET on a POST endpoint: %d", code)
	}
}

func TestCrossSiteBrowserPostRefused(t *testing.T) {
	f := newFixture(t, Options{Loopback: true})
	req, _ := http.NewRequest("POST", f.srv.URL+"/api/reload", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden || f.state.reloads != 0 {
		t.Errorf("cross-site POST: %d, %d reloads", res.StatusCode, f.state.reloads)
	}
}

func TestCheckListen(t *testing.T) {
	tests := []struct {
		addr, token string
		ok          bool
	}{
		{"", "", true}, // admin off
		{"127.0.0.1:9901", "", true},
		{"[::1]:9901", "", true},
		{"localhost:9901", "", true},
		{"127.0.0.2:9901", "", true},
		{":9901", "", false},
		{"0.0.0.0:9901", "", false},
		{"[::]:9901", "", false},
		{"10.0.0.5:9901", "", false},
		{"admin.internal:9901", "", false},
		{":9901", "tok", true},
		{"10.0.0.5:9901", "tok", true},
		{"127.0.0.1", "", false}, // no port
	}
	for _, tt := range tests {
		err := CheckListen(tt.addr, tt.token)
		if (err == nil) != tt.ok {
			t.Errorf("CheckListen(%q, %q) = %v, want ok=%v", tt.addr, tt.token, err, tt.ok)
		}
		if err != nil && tt.addr != "127.0.0.1" && !strings.Contains(err.Error(), "admin.token") {
			t.Errorf("error %q should tell the operator to set admin.token", err)
		}
	}
}
