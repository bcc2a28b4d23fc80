package deploy_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDistPackagesTheHost runs the release packaging for this machine's
// platform and opens what it wrote, as a user who downloads it would.
func TestDistPackagesTheHost(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("scripts/dist.sh is a bash script; release archives are built on linux")
	}
	out := t.TempDir()
	const version = "v0.0.0-test"
	cmd := exec.Command("bash", "../scripts/dist.sh")
	// BUILDENV and BUILDFLAGS empty: the build reuses the test's cache
	// instead of compiling every dependency again as a static, trimmed
	// build; the packaging is the same.
	cmd.Env = append(os.Environ(), "PLATFORMS=host", "VERSION="+version, "COMMIT=abc123", "OUT="+out, "BUILDENV=", "BUILDFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dist.sh: %v\n%s", err, b)
	}

	name := fmt.Sprintf("proxy-server_%s_%s_%s", version, runtime.GOOS, runtime.GOARCH)
	entries, _ := os.ReadDir(out)
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	if diff := cmp.Diff([]string{"SHA256SUMS", name + ".tar.gz"}, files); diff != "" {
		t.Fatalf("dist wrote (-want +got):\n%s", diff)
	}

	archive, err := os.ReadFile(filepath.Join(out, name+".tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(archive)
	sums, _ := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if want := hex.EncodeToString(sum[:]) + "  " + name + ".tar.gz\n"; string(sums) != want {
		t.Errorf("SHA256SUMS is %q, want %q", sums, want)
	}

	dir := t.TempDir()
	got := untar(t, archive, dir)
	want := []string{name + "/", name + "/LICENSE", name + "/README.md", name + "/config.yaml", name + "/proxy-server"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("archive holds (-want +got):\n%s", diff)
	}
	bin := filepath.Join(dir, name, "proxy-server")
	b, err := exec.Command(bin, "-version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(b), "proxy-server "+version+" commit abc123 ") {
		t.Errorf("-version: %q, %v", b, err)
	}
	if b, err := exec.Command(bin, "-validate", "-config", filepath.Join(dir, name, "config.yaml")).CombinedOutput(); err != nil {
		t.Errorf("the shipped config.yaml: %v\n%s", err, b)
	}
	lic, _ := os.ReadFile(filepath.Join(dir, name, "LICENSE"))
	if !bytes.HasPrefix(lic, []byte("MIT License")) {
		t.Errorf("LICENSE starts %q", lic[:min(len(lic), 40)])
	}
}

// untar writes a .tar.gz into dir and returns its entry names, sorted.
func untar(t *testing.T, archive []byte, dir string) []string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want 0:0 (the builder's ids mean nothing to a user)", h.Name, h.Uid, h.Gid)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, os.FileMode(h.Mode)&0o777); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("%s: unexpected entry type %c", h.Name, h.Typeflag)
		}
	}
	sort.Strings(names)
	return names
}

// TestVersionFromGit checks the version a build is stamped with, in a
// repository made for the test: dev-<commit> until the commit is tagged
// v0.x.y, then the tag; -dirty while files are changed.
func TestVersionFromGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	script, err := filepath.Abs("../scripts/version.sh")
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+repo)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return strings.TrimSpace(string(b))
	}
	if got := run("bash", script); got != "dev" {
		t.Errorf("outside git: %q, want dev", got)
	}
	run("git", "init", "-q")
	os.WriteFile(filepath.Join(repo, "f"), []byte("1"), 0o644)
	run("git", "add", "f")
	run("git", "commit", "-qm", "one")
	short := run("git", "rev-parse", "--short=12", "HEAD")
	if got := run("bash", script); got != "dev-"+short {
		t.Errorf("untagged: %q, want dev-%s", got, short)
	}
	run("git", "tag", "not-a-release")
	run("git", "tag", "v0.3.1")
	if got := run("bash", script); got != "v0.3.1" {
		t.Errorf("tagged v0.3.1: %q", got)
	}
	os.WriteFile(filepath.Join(repo, "f"), []byte("2"), 0o644)
	if got := run("bash", script); got != "v0.3.1-dirty" {
		t.Errorf("tagged, with a changed file: %q, want v0.3.1-dirty", got)
	}
}
