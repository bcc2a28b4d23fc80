package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"HOST": "10.0.0.1", "PORT": "8080", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		name, in, want, wantErr string
	}{
		{name: "plain", in: "no variables", want: "no variables"},
		{name: "whole value", in: "${HOST}", want: "10.0.0.1"},
		{name: "inside text", in: "http://${HOST}:${PORT}/", want: "http://10.0.0.1:8080/"},
		{name: "default unused", in: "${PORT:-9000}", want: "8080"},
		{name: "default for unset", in: "${NOPE:-9000}", want: "9000"},
		{name: "default for empty", in: "${EMPTY:-x}", want: "x"},
		{name: "empty default", in: "${NOPE:-}", want: ""},
		{name: "set but empty", in: "a${EMPTY}b", want: "ab"},
		{name: "nested default", in: "${NOPE:-${HOST}}", want: "10.0.0.1"},
		{name: "default with colon", in: "${NOPE:-127.0.0.1:6379}", want: "127.0.0.1:6379"},
		{name: "escaped", in: "$${HOST}", want: "${HOST}"},
		{name: "lone dollar kept", in: "pa$$word$", want: "pa$$word$"},
		{name: "unset", in: "${NOPE}", wantErr: "environment variable NOPE is not set (write ${NOPE:-} to allow it to be empty)"},
		{name: "unterminated", in: "${HOST", wantErr: `unterminated ${ in "${HOST": add the closing }`},
		{name: "bad name", in: "${1X}", wantErr: `${1X}: "1X" is not a variable name (letters, digits and _, not starting with a digit)`},
		{name: "empty name", in: "${}", wantErr: `${}: "" is not a variable name (letters, digits and _, not starting with a digit)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := expand(tc.in, lookup)
			checkUnit(t, err, tc.wantErr, got, tc.want)
		})
	}
}

func TestParseExpandsEnvironment(t *testing.T) {
	t.Setenv("PROXY_TEST_BACKEND", "http://10.1.2.3:8080")
	t.Setenv("PROXY_TEST_WEIGHT", "4")
	t.Setenv("PROXY_TEST_INTERVAL", "7s")
	c, err := Parse("t.yaml", []byte(`servers:
  - url: ${PROXY_TEST_BACKEND}
    weight: ${PROXY_TEST_WEIGHT}
  - url: "http://${PROXY_TEST_UNSET_HOST:-10.9.9.9}:80"
health_checks:
  interval: ${PROXY_TEST_INTERVAL}
# ${PROXY_TEST_IN_COMMENT} is not expanded
`))
	if err != nil {
		t.Fatal(err)
	}
	got := []any{c.Servers[0].URL, c.Servers[0].Weight, c.Servers[1].URL, c.HealthChecks.Interval.String()}
	want := []any{"http://10.1.2.3:8080", 4, "http://10.9.9.9:80", "7s"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseReportsUnsetVariableAtItsPosition(t *testing.T) {
	_, err := parseEnv(t, "servers:\n  - url: http://a\nadmin:\n  listen: \":9901\"\n  token: ${ADMIN_TOKEN}\n", nil)
	want := []string{
		`t.yaml:5:10: admin.token: environment variable ADMIN_TOKEN is not set (write ${ADMIN_TOKEN:-} to allow it to be empty)`,
	}
	if diff := cmp.Diff(want, errLines(t, err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"strategy", "hash_key", "bounded_load"}
	tests := []struct{ in, want string }{
		{"strategyy", "strategy"},
		{"stratgey", "strategy"}, // swapped letters
		{"Strategy", "strategy"},
		{"hash-key", "hash_key"},
		{"hashKey", "hash_key"},
		{"bounded", "bounded_load"},
		{"weight", ""},
		{"x", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := suggest(tc.in, keys); got != tc.want {
				t.Errorf("suggest(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "ab", 2},
		{"kitten", "sitting", 3}, {"ab", "ba", 1}, {"strategy", "strategyy", 1},
	}
	for _, tc := range tests {
		if got := distance(tc.a, tc.b); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
