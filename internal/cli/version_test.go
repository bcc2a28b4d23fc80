package cli

import (
	"runtime/debug"
	"testing"
)

func TestVersionFromBuildInfo(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name            string
		bi              *debug.BuildInfo
		ldVersion       string
		ldCommit        string
		version, commit string
	}{
		{"plain go build, no VCS", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev", "", "dev", "unknown"},
		{"go build in a checkout", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("abc123", "false")}, "dev", "", "dev", "abc123"},
		{"with local changes", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("abc123", "true")}, "dev", "", "dev", "abc123-dirty"},
		{"go install module@version", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "dev", "", "v1.2.3", "unknown"},
		{"version from a tag in a checkout", &debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}, Settings: vcs("abc123", "false")}, "dev", "", "v0.4.0", "abc123"},
		{"ldflags win", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: vcs("abc123", "true")}, "v9.9.9", "fff000", "v9.9.9", "fff000"},
		{"no build info", nil, "dev", "", "dev", "unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, c := versionFrom(tc.bi, tc.ldVersion, tc.ldCommit)
			if v != tc.version || c != tc.commit {
				t.Errorf("got %s %s, want %s %s", v, c, tc.version, tc.commit)
			}
		})
	}
}
