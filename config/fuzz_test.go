package config

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that every error
// it returns is a positioned, human message: an ErrorList of *Error with a
// line (or, for whole-file problems, a file name and a message) and no Go
// internals leaking through. Its seeds, here and in
// testdata/fuzz/FuzzParse, run as ordinary tests.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

func FuzzParse(f *testing.F) {
	f.Add([]byte(seed))
	f.Add([]byte(specExample))
	f.Add([]byte(""))
	f.Add([]byte("servers: &a [*a]\n"))
	f.Add([]byte("a: &a {<<: *a}\n"))
	f.Add([]byte("servers: [{url: ${X:-http://a}, weight: 0x10}]\n"))
	f.Add([]byte("upstreams: {api: ~, \"\": []}\nroutes: [{upstream: api, rate_limit: ~}]\n"))
	if files, err := filepath.Glob("../examples/*.yaml"); err == nil {
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}

	lookup := func(k string) (string, bool) {
		if k == "SET" {
			return "value", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parse("f.yaml", data, lookup, false, nil)
		if err == nil {
			if c == nil {
				t.Fatal("nil config without an error")
			}
			// A valid config must stay valid through its own checker.
			if err := c.Validate(); err != nil {
				t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
			}
			return
		}
		if c != nil {
			t.Fatal("config returned along with errors")
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error is %T, want a non-empty ErrorList: %v", err, err)
		}
		for _, e := range list {
			if e.File != "f.yaml" || e.Msg == "" {
				t.Errorf("error without file or message: %#v", e)
			}
			// Only whole-file problems (YAML syntax the parser could not
			// locate) may lack a line.
			if e.Line < 1 && !strings.HasPrefix(e.Msg, "invalid YAML: ") {
				t.Errorf("error without a line: %q", e.Error())
			}
			// The user's own text, quoted, may contain anything.
			ours := quoted.ReplaceAllString(e.Msg, `""`)
			for _, leak := range []string{"reflect", "config.", "yaml.Node", "!!", "%!", "internal error"} {
				if strings.Contains(ours, leak) {
					t.Errorf("message leaks %q: %q", leak, e.Msg)
				}
			}
			if strings.Contains(e.Msg, "\n") {
				t.Errorf("message spans lines: %q", e.Msg)
			}
		}
	})
}
