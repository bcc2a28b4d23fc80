package cli

import "runtime/debug"

// buildVersion returns the version and commit of this binary: what -ldflags
// stamped, else what the go command recorded in it.
func buildVersion() (version, commit string) {
	bi, _ := debug.ReadBuildInfo()
	return versionFrom(bi, Version, Commit)
}

// versionFrom fills in what -ldflags left unset from the build record: the
// module's version (set by `go install module@version`, or from a VCS tag)
// and the VCS revision of a build in a checkout, marked -dirty when the
// tree had changes. A commit nobody recorded is "unknown", the same in
// -version and in proxy_build_info.
func versionFrom(bi *debug.BuildInfo, version, commit string) (string, string) {
	if bi != nil {
		if v := bi.Main.Version; version == "dev" && v != "" && v != "(devel)" {
			version = v
		}
		if commit == "" {
			var rev, modified string
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					modified = s.Value
				}
			}
			if rev != "" && modified == "true" {
				rev += "-dirty"
			}
			commit = rev
		}
	}
	if commit == "" {
		commit = "unknown"
	}
	return version, commit
}
