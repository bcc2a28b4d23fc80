package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{{
		name: "unknown key with suggestion",
		src:  "servers:\n  - url: http://a\nload_balancing:\n  strategyy: round_robin\n",
		want: []string{`t.yaml:4:3: load_balancing.strategyy: unknown key, did you mean "strategy"?`},
	}, {
		name: "unknown key in route",
		src:  "servers: [{url: http://a}]\nroutes:\n  - match: {hots: a.com}\n    upstrem: default\n",
		want: []string{
			`t.yaml:3:13: routes[0].match.hots: unknown key, did you mean "host"?`,
			`t.yaml:4:5: routes[0].upstrem: unknown key, did you mean "upstream"?`,
		},
	}, {
		name: "unknown key in named upstream",
		src:  "upstreams:\n  api:\n    servers: [{url: http://a, wieght: 2}]\n    health_check: {}\nroutes: [{upstream: api}]\n",
		want: []string{
			`t.yaml:3:31: upstreams.api.servers[0].wieght: unknown key, did you mean "weight"?`,
			`t.yaml:4:5: upstreams.api.health_check: unknown key, did you mean "health_checks"?`,
		},
	}, {
		name: "unknown key without a close match",
		src:  "servers: [{url: http://a}]\ncolour: blue\n",
		want: []string{`t.yaml:2:1: colour: unknown key`},
	}, {
		name: "key at the wrong level",
		src:  "servers: [{url: http://a}]\ninterval: 5s\n",
		want: []string{`t.yaml:2:1: interval: unknown key, did you mean "health_checks.interval" (it belongs inside "health_checks")?`},
	}, {
		// "path" is two edits from "watch", but a key that is valid in
		// the section just above was indented too little.
		name: "key dedented out of its section",
		src:  "servers: [{url: http://a}]\nhealth_checks:\n  interval: 5s\npath: /health\n",
		want: []string{`t.yaml:4:1: path: unknown key, did you mean "health_checks.path" (it belongs inside "health_checks")?`},
	}, {
		name: "key valid in another section than the one above",
		src:  "servers: [{url: http://a}]\nrate_limit:\n  requests_per_second: 5\ntimeout: 1s\n",
		want: []string{`t.yaml:4:1: timeout: unknown key, did you mean "health_checks.timeout" (it belongs inside "health_checks")?`},
	}, {
		name: "key dedented out of a nested section",
		src:  "servers: [{url: http://a}]\nhealth_checks:\n  passive:\n    on_5xx: true\n  ejection_time: 5s\n",
		want: []string{`t.yaml:5:3: health_checks.ejection_time: unknown key, did you mean "passive.ejection_time" (it belongs inside "passive")?`},
	}, {
		name: "key dedented out of retries",
		src:  "servers: [{url: http://a}]\nretries:\n  attempts: 2\nbackoff: 1s\n",
		want: []string{`t.yaml:4:1: backoff: unknown key, did you mean "retries.backoff" (it belongs inside "retries")?`},
	}, {
		name: "case style",
		src:  "servers: [{url: http://a}]\nloadBalancing: {}\n",
		want: []string{`t.yaml:2:1: loadBalancing: unknown key, did you mean "load_balancing"?`},
	}, {
		name: "many errors at once, in file order",
		src:  "servers:\n  - url: ftp://a\n    weight: zero\nlisten: 8080\nlogging: {level: loud}\n",
		want: []string{
			`t.yaml:2:10: servers[0].url: scheme must be http or https, not "ftp"`,
			`t.yaml:3:13: servers[0].weight: must be an integer, not "zero"`,
			`t.yaml:4:9: listen: "8080" is not a host:port address; write ":8080" to use every interface`,
			`t.yaml:5:18: logging.level: must be debug, info, warn or error, not "loud"`,
		},
	}, {
		name: "string where a list is expected",
		src:  "servers: http://a\n",
		want: []string{`t.yaml:1:10: servers: must be a list, not "http://a"`},
	}, {
		name: "list where a string is expected",
		src:  "servers: [{url: http://a}]\nlisten: [a, b]\n",
		want: []string{`t.yaml:2:9: listen: must be a string, not a list`},
	}, {
		name: "scalar where a mapping is expected",
		src:  "servers: [{url: http://a}]\nhealth_checks: fast\n",
		want: []string{`t.yaml:2:16: health_checks: must be a mapping of settings, not "fast"`},
	}, {
		name: "upstreams as a list",
		src:  "servers: [{url: http://a}]\nupstreams: [api]\n",
		want: []string{`t.yaml:2:12: upstreams: must be a mapping of names to settings, not a list`},
	}, {
		name: "bool",
		src:  "servers: [{url: http://a, backup: yes}, {url: http://b}]\n",
		want: []string{`t.yaml:1:35: servers[0].backup: must be true or false, not "yes"`},
	}, {
		name: "float",
		src:  "servers: [{url: http://a}]\ntracing: {sample_ratio: half}\n",
		want: []string{`t.yaml:2:25: tracing.sample_ratio: must be a number, not "half"`},
	}, {
		name: "not a mapping at all",
		src:  "- url: http://a\n",
		want: []string{`t.yaml:1:1: must be a mapping of settings such as servers and listen, not a list`},
	}, {
		name: "duplicate key",
		src:  "servers: [{url: http://a}]\nlisten: \":1\"\nlisten: \":2\"\n",
		want: []string{`t.yaml:3:1: listen: duplicate key (first set on line 2)`},
	}, {
		name: "empty file",
		src:  "# nothing\n",
		want: []string{`t.yaml:1:1: servers: required: list at least one server (or define upstreams and routes)`},
	}, {
		name: "second document",
		src:  "servers: [{url: http://a}]\n---\nlisten: \":1\"\n",
		want: []string{`t.yaml:2:1: a second YAML document: a config file holds exactly one (remove the ---)`},
	}, {
		name: "syntax error",
		src:  "servers: http://a\n  weight: 2\n",
		want: []string{`t.yaml:2:9: invalid YAML: mapping values are not allowed in this context (put a value that contains ": " in quotes, or check the indentation)`},
	}, {
		// The parser blames line 1, where the block began.
		name: "key indented less than its block",
		src:  "servers:\n  - url: http://a\n    weight: 2\n   name: x\n",
		want: []string{`t.yaml:4:4: invalid YAML: did not find expected '-' indicator (is this line indented more or less than the lines above?)`},
	}, {
		name: "key indented between two levels",
		src:  "servers: [{url: http://a}]\nhealth_checks:\n    interval: 1s\n  timeout: 2s\n",
		want: []string{`t.yaml:4:3: invalid YAML: did not find expected key (is this line indented more or less than the lines above?)`},
	}, {
		name: "tab as indentation",
		src:  "servers:\n\t- url: http://a\n",
		want: []string{`t.yaml:2:1: invalid YAML: tabs are not allowed for indentation in YAML; use spaces`},
	}, {
		name: "tab after spaces",
		src:  "servers:\n  - url: http://a\n  \t- url: http://b\n",
		want: []string{`t.yaml:3:3: invalid YAML: tabs are not allowed for indentation in YAML; use spaces`},
	}, {
		name: "tab deeper in the file",
		src:  "listen: \":80\"\nservers:\n  - url: http://a\n    weight: 2\nhealth_checks:\n\tinterval: 1s\n",
		want: []string{`t.yaml:6:1: invalid YAML: tabs are not allowed for indentation in YAML; use spaces`},
	}, {
		name: "unclosed quote",
		src:  "listen: \":80\"\nservers:\n  - url: \"http://a\n",
		want: []string{`t.yaml:3:10: invalid YAML: found unexpected end of stream (this quote is never closed)`},
	}, {
		name: "list on the key's line",
		src:  "listen: \":80\"\nservers: - url: http://a\n",
		want: []string{`t.yaml:2:10: invalid YAML: block sequence entries are not allowed in this context (start the list on the next line)`},
	}, {
		name: "reserved character",
		src:  "servers: [{url: http://a}]\nlisten: @x\n",
		want: []string{`t.yaml:2:9: invalid YAML: found character that cannot start any token ('@' is reserved: put the value in quotes)`},
	}, {
		name: "unknown anchor",
		src:  "servers: [{url: http://a}]\nhealth_checks: *hc\n",
		want: []string{`t.yaml:2:16: invalid YAML: unknown anchor 'hc' referenced`},
	}, {
		name: "invalid UTF-8",
		src:  "servers: [{url: http://a}]\nlisten: \"\xff\"\n",
		want: []string{`t.yaml:2:10: invalid UTF-8: save the file as UTF-8`},
	}, {
		name: "control character",
		src:  "servers: [{url: http://a}]\n\x01listen: x\n",
		want: []string{`t.yaml:2:1: control character '\x01' is not allowed in YAML`},
	}, {
		name: "alias to the list that holds it",
		src:  "servers: &s [*s]\n",
		want: []string{`t.yaml:1:10: servers[0]: must be a mapping of settings, not a list`},
	}, {
		name: "merge of the mapping that holds it",
		src:  "servers: [{url: http://a}]\nhealth_checks: &h {<<: *h}\n",
		want: []string{`t.yaml:2:16: merge key refers to the mapping that contains it`},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseEnv(t, tc.src, nil)
			if diff := cmp.Diff(tc.want, errLines(t, err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"full", &Error{File: "f.yaml", Line: 3, Col: 5, Msg: "m"}, "f.yaml:3:5: m"},
		{"no column", &Error{File: "f.yaml", Line: 3, Msg: "m"}, "f.yaml:3: m"},
		{"whole file", &Error{File: "f.yaml", Msg: "m"}, "f.yaml: m"},
		{"no file", &Error{Line: 1, Col: 2, Msg: "m"}, "1:2: m"},
		{"nothing", &Error{Msg: "m"}, "m"},
		{"warning", &Error{File: "f.yaml", Line: 3, Col: 5, Msg: "m", Warning: true}, "f.yaml:3:5: warning: m"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
