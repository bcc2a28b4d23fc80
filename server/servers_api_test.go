package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tbsphathuynh/proxy/config"
)

// adminDo sends an admin API request with the test token and returns the
// status and body.
func adminDo(t *testing.T, p *Server, method, path, body, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+p.AdminAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// adminServers reads GET /api/upstreams: upstream → server name → its JSON.
func adminServers(t *testing.T, p *Server) map[string]map[string]map[string]any {
	t.Helper()
	code, body := adminDo(t, p, "GET", "/api/upstreams", "", "")
	if code != 200 {
		t.Fatalf("GET /api/upstreams: %d %s", code, body)
	}
	var v struct {
		Upstreams []struct {
			Name    string
			Servers []map[string]any
		}
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]map[string]any{}
	for _, u := range v.Upstreams {
		out[u.Name] = map[string]map[string]any{}
		for _, s := range u.Servers {
			out[u.Name][s["name"].(string)] = s
		}
	}
	return out
}

const apiToken = "s3cret"

func apiYAML(body string) string {
	return "admin: {listen: 127.0.0.1:0, token: " + apiToken + "}\n" + body
}

func TestAPIDrainedServerFinishesItsSlowRequestAndGetsNoNewOnes(t *testing.T) {
	release := make(chan struct{})
	slowAt := make(chan string, 2)
	var hitsA, hitsB atomic.Int64
	mk := func(name string, n *atomic.Int64) *httptest.Server {
		return backend(t, name, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				slowAt <- name
				<-release
			} else {
				n.Add(1)
			}
			io.WriteString(w, name)
		})
	}
	a, b := mk("a", &hitsA), mk("b", &hitsB)
	p := startProxy(t, apiYAML("servers:\n  - {url: "+a.URL+", name: a}\n  - {url: "+b.URL+", name: b}\n"))

	type result struct {
		code int
		body string
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + p.Addr() + "/slow")
		if err != nil {
			done <- result{body: err.Error()}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp.StatusCode, string(body)}
	}()
	busy := <-slowAt
	other := map[string]string{"a": "b", "b": "a"}[busy]

	// A token is needed, as for every change.
	if code, _ := adminDo(t, p, "PATCH", "/api/upstreams/default/servers/"+busy, `{"drain": true}`, ""); code != http.StatusUnauthorized {
		t.Fatalf("PATCH without the token: %d, want 401", code)
	}
	if code, body := adminDo(t, p, "PATCH", "/api/upstreams/default/servers/"+busy, `{"drain": true}`, apiToken); code != 200 {
		t.Fatalf("PATCH drain: %d %s", code, body)
	}
	before := map[string]int64{"a": hitsA.Load(), "b": hitsB.Load()}
	for range 20 {
		if code, body, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/"); code != 200 || body != other {
			t.Fatalf("after the drain: %d %q, want 200 from %s", code, body, other)
		}
	}
	if got := map[string]int64{"a": hitsA.Load(), "b": hitsB.Load()}; got[busy] != before[busy] {
		t.Errorf("the drained server got %d new requests", got[busy]-before[busy])
	}
	close(release)
	if r := <-done; r.code != 200 || r.body != busy {
		t.Errorf("the in-flight slow request on the drained server: %d %q, want 200 %q", r.code, r.body, busy)
	}
	if s := adminServers(t, p)["default"][busy]; s["drained"] != true || s["source"] != "config" {
		t.Errorf("GET /api/upstreams shows %v, want drained, source config", s)
	}
}

func TestAPIAddsPatchesAndRemovesServersKeptAcrossReload(t *testing.T) {
	a := backend(t, "a", nil)
	c := backend(t, "c", nil)
	cfg := "servers:\n  - {url: " + a.URL + ", name: a}\n"
	p := startProxy(t, apiYAML(cfg))

	add := fmt.Sprintf(`{"url": %q, "name": "c", "weight": 2}`, c.URL)
	if code, body := adminDo(t, p, "POST", "/api/upstreams/default/servers", add, apiToken); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, body)
	}
	if code, _ := adminDo(t, p, "POST", "/api/upstreams/default/servers", add, apiToken); code != http.StatusConflict {
		t.Errorf("POST of a server the upstream has: %d, want 409", code)
	}
	if code, _ := adminDo(t, p, "POST", "/api/upstreams/nope/servers", add, apiToken); code != http.StatusNotFound {
		t.Errorf("POST to an unknown upstream: %d, want 404", code)
	}
	if code, _ := adminDo(t, p, "POST", "/api/upstreams/default/servers", `{"url": "ftp://x"}`, apiToken); code != http.StatusBadRequest {
		t.Errorf("POST of a bad URL: %d, want 400", code)
	}
	waitFor(t, "the added server to serve", func() bool {
		_, body, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/")
		return body == "c"
	})
	if code, body := adminDo(t, p, "PATCH", "/api/upstreams/default/servers/a", `{"weight": 5, "backup": false}`, apiToken); code != 200 {
		t.Fatalf("PATCH weight: %d %s", code, body)
	}
	if code, _ := adminDo(t, p, "PATCH", "/api/upstreams/default/servers/a", `{"weight": 0}`, apiToken); code != http.StatusBadRequest {
		t.Errorf("PATCH weight 0: %d, want 400", code)
	}

	// A reload of the same file keeps both changes.
	full, err := config.Parse("reload.yaml", []byte("listen: 127.0.0.1:0\nlogging: {access_log: \"off\"}\nhealth_checks: {enabled: false}\n"+apiYAML(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(full); err != nil {
		t.Fatal(err)
	}
	got := adminServers(t, p)["default"]
	if got["a"]["weight"] != 5.0 || got["a"]["source"] != "config" {
		t.Errorf("after a reload, a = %v; want weight 5 from the API, source config", got["a"])
	}
	if got["c"]["source"] != "api" || got["c"]["weight"] != 2.0 {
		t.Errorf("after a reload, c = %v; want the server the API added", got["c"])
	}

	if code, body := adminDo(t, p, "DELETE", "/api/upstreams/default/servers/c", "", apiToken); code != 200 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if _, ok := adminServers(t, p)["default"]["c"]; ok {
		t.Errorf("DELETE left the server in the pool")
	}
	for range 10 {
		if _, body, _ := get(t, http.DefaultClient, "http://"+p.Addr()+"/"); body != "a" {
			t.Fatalf("after DELETE a request reached %q", body)
		}
	}
	if code, _ := adminDo(t, p, "DELETE", "/api/upstreams/default/servers/c", "", apiToken); code != http.StatusNotFound {
		t.Errorf("DELETE of a removed server: %d, want 404", code)
	}
}
