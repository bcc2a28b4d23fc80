package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// noDuplicateKeys reports the first key that appears twice in one object
// of the JSON text line, at any depth: many log pipelines refuse such a
// record, or keep either value.
func noDuplicateKeys(line string) error {
	dec := json.NewDecoder(strings.NewReader(line))
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				if seen[key] {
					return fmt.Errorf("key %q twice", key)
				}
				seen[key] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	return walk()
}

// Health and circuit lines name their upstream and server once:
// every line the proxy writes is JSON with no key twice.
func TestLogLinesHaveEachKeyOnce(t *testing.T) {
	var failing atomic.Bool
	a := backend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusBadGateway)
		}
		io.WriteString(w, "a")
	})
	var log logBuffer
	p := startProxyLogging(t, `admin: {listen: "127.0.0.1:0"}
servers: [{url: `+a.URL+`, name: a}]
health_checks:
  enabled: false
  passive: {consecutive_failures: 2, ejection_time: 100ms, max_ejection_percent: 100}
circuit_breaker: {consecutive_failures: 3, open_time: 100ms}
`, &log)
	failing.Store(true)
	for range 3 {
		get(t, http.DefaultClient, "http://"+p.Addr()+"/")
	}
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", log.String())
		}
	}()
	waitFor(t, "the circuit to open", func() bool {
		s := log.String()
		return strings.Contains(s, `"state":"open"`)
	})
	failing.Store(false)
	waitFor(t, "the circuit closed again", func() bool {
		get(t, http.DefaultClient, "http://"+p.Addr()+"/")
		return strings.Contains(log.String(), `"state":"closed"`)
	})
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	for _, line := range lines {
		if !json.Valid([]byte(line)) {
			t.Errorf("not JSON: %s", line)
			continue
		}
		if err := noDuplicateKeys(line); err != nil {
			t.Errorf("%v: %s", err, line)
		}
	}
	if !bytes.Contains([]byte(log.String()), []byte(`"upstream":"default"`)) {
		t.Errorf("no line names the upstream:\n%s", log.String())
	}
}
