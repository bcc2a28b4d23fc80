package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
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
