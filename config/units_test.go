package config

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    Duration
		wantErr string
	}{
		{in: "10s", want: Duration(10 * time.Second)},
		{in: "250ms", want: Duration(250 * time.Millisecond)},
		{in: "1m30s", want: Duration(90 * time.Second)},
		{in: "0", want: 0},
		{in: "0s", want: 0},
		{in: "10", wantErr: `"10" needs a unit, such as "10s" or "10ms"`},
		{in: "1.5", wantErr: `"1.5" needs a unit, such as "1.5s" or "1.5ms"`},
		{in: "-5s", wantErr: `must not be negative, got "-5s"`},
		{in: "-3", wantErr: `must not be negative, got "-3"`},
		{in: "1d", want: Duration(24 * time.Hour)},
		{in: "365d", want: Duration(365 * 24 * time.Hour)},
		{in: "1d12h", wantErr: `"1d12h" is not a duration; write a number and a unit (d, h, m, s, ms), such as "10s" or "1m30s"`},
		{in: "[1s]", wantErr: `must be a duration such as "10s", not a list`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			var d Duration
			err := yaml.Unmarshal([]byte(tc.in), &d)
			checkUnit(t, err, tc.wantErr, d, tc.want)
		})
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr string
	}{
		{in: "65536", want: 65536},
		{in: "64KiB", want: 64 << 10},
		{in: "1MiB", want: 1 << 20},
		{in: "2GiB", want: 2 << 30},
		{in: "512KB", want: 512_000},
		{in: "1MB", want: 1_000_000},
		{in: "1 mb", want: 1_000_000},
		{in: "100B", want: 100},
		{in: "0", want: 0},
		{in: "-1KiB", wantErr: `must not be negative, got "-1KiB"`},
		{in: "1.5MiB", wantErr: `"1.5MiB" is not a size; write bytes (65536) or a number and a unit (KB, MB, KiB, MiB), such as "64KiB"`},
		{in: "64K", wantErr: `"64K" is not a size; write bytes (65536) or a number and a unit (KB, MB, KiB, MiB), such as "64KiB"`},
		{in: "99999999999GiB", wantErr: `"99999999999GiB" is too large`},
		{in: "{a: 1}", wantErr: `must be a size such as 65536 or "64KiB", not a mapping`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			var s Size
			err := yaml.Unmarshal([]byte(tc.in), &s)
			checkUnit(t, err, tc.wantErr, s, tc.want)
		})
	}
}

func checkUnit[T comparable](t *testing.T, err error, wantErr string, got, want T) {
	t.Helper()
	switch {
	case wantErr != "" && err == nil:
		t.Errorf("got %v, want error %q", got, wantErr)
	case wantErr != "" && err.Error() != wantErr:
		t.Errorf("error %q, want %q", err, wantErr)
	case wantErr == "" && err != nil:
		t.Errorf("unexpected error: %v", err)
	case wantErr == "" && got != want:
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestUnitsRoundTrip(t *testing.T) {
	type doc struct {
		D Duration `yaml:"d"`
		S Size     `yaml:"s"`
	}
	in := doc{D: Duration(90 * time.Second), S: 64 << 10}
	out, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "d: 1m30s\ns: 64KiB\n"; got != want {
		t.Errorf("marshal = %q, want %q", got, want)
	}
	var back doc
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if got := Size(1000).String(); got != "1000" {
		t.Errorf("Size(1000) = %q, want 1000", got)
	}
}

func TestDurationAndSizeInConfig(t *testing.T) {
	_, err := parseEnv(t, one+"shutdown_timeout: 30\nclient: {max_header_bytes: 1.5MiB}\n", nil)
	want := []string{
		`t.yaml:2:19: shutdown_timeout: "30" needs a unit, such as "30s" or "30ms"`,
		`t.yaml:3:28: client.max_header_bytes: "1.5MiB" is not a size; write bytes (65536) or a number and a unit (KB, MB, KiB, MiB), such as "64KiB"`,
	}
	if diff := cmp.Diff(want, errLines(t, err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

// Every field in the config must be of a kind the walker decodes; a new
// field of another kind would otherwise fail only when someone sets it.
func TestEveryFieldDecodable(t *testing.T) {
	var visit func(path string, typ reflect.Type)
	seen := map[reflect.Type]bool{}
	visit = func(path string, typ reflect.Type) {
		if reflect.PointerTo(typ).Implements(unmarshalerType) || typ == strategyOptionsType || typ == policyType {
			return // decoded by hand (walk.go)
		}
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice:
			visit(path, typ.Elem())
		case reflect.Map:
			if typ.Key().Kind() != reflect.String {
				t.Errorf("%s: map key %s is not a string", path, typ.Key())
			}
			visit(path, typ.Elem())
		case reflect.Struct:
			if seen[typ] {
				return
			}
			seen[typ] = true
			for i := range typ.NumField() {
				if f := typ.Field(i); f.Tag.Get("yaml") != "-" {
					visit(path+"."+f.Name, f.Type)
				}
			}
		case reflect.String, reflect.Bool, reflect.Int, reflect.Float64:
		default:
			t.Errorf("%s: kind %s is not decoded by the walker", path, typ.Kind())
		}
	}
	visit("Config", reflect.TypeFor[Config]())
}
