package gctune

import (
	"errors"
	"math"
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))

	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(name string) ([]byte, error) {
			if v, ok := m[name]; ok {
				return []byte(v), nil
			}
			return nil, errors.New("no such file")
		}
	}
	cases := []struct {
		name  string
		env   map[string]string
		files map[string]string
		want  Settings
	}{
		{"bare machine", nil, nil, Settings{GCPercent: DefaultPercent}},
		{"cgroup v2 limit", nil, map[string]string{"/sys/fs/cgroup/memory.max": "1073741824\n"}, Settings{GCPercent: DefaultPercent, MemoryLimit: 966367641}},
		{"cgroup v2 unlimited", nil, map[string]string{"/sys/fs/cgroup/memory.max": "max\n"}, Settings{GCPercent: DefaultPercent}},
		{"cgroup v1 limit", nil, map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "536870912"}, Settings{GCPercent: DefaultPercent, MemoryLimit: 483183820}},
		{"cgroup v1 unlimited", nil, map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712"}, Settings{GCPercent: DefaultPercent}},
		{"operator's GOGC", map[string]string{"GOGC": "50"}, nil, Settings{}},
		{"operator's GOMEMLIMIT", map[string]string{"GOMEMLIMIT": "1GiB"}, map[string]string{"/sys/fs/cgroup/memory.max": "1073741824"}, Settings{GCPercent: DefaultPercent}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Apply(env(tc.env), files(tc.files))
			if got != tc.want {
				t.Errorf("Apply = %+v, want %+v", got, tc.want)
			}
			if tc.want.GCPercent != 0 {
				if p := debug.SetGCPercent(DefaultPercent); p != DefaultPercent {
					t.Errorf("GOGC is %d, want %d", p, DefaultPercent)
				}
			}
			if tc.want.MemoryLimit != 0 {
				if l := debug.SetMemoryLimit(-1); l != tc.want.MemoryLimit {
					t.Errorf("memory limit is %d, want %d", l, tc.want.MemoryLimit)
				}
			}
		})
	}
}
