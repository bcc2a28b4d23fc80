package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// containerTool is docker when its engine answers, else podman, as
// `make image` picks; "" when neither can build.
func containerTool() string {
	if exec.Command("docker", "info").Run() == nil {
		return "docker"
	}
	if _, err := exec.LookPath("podman"); err == nil {
		return "podman"
	}
	return ""
}

// TestImage builds the container image with `make image`, copies the
// binary and config out of it without running it (a sandbox may refuse to
// run containers where it builds them), and runs -version and -validate.
// The build compiles everything from scratch inside the builder, a minute
// or more, so it is skipped under -short. PROXY_GO_IMAGE names another
// builder image than the Dockerfile's, for machines that cannot pull it.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the image build takes minutes")
	}
	tool := containerTool()
	if tool == "" {
		t.Skip("neither a docker engine nor podman is available: the image is not built")
	}
	goImage := os.Getenv("PROXY_GO_IMAGE")
	if goImage == "" {
		goImage = dockerfileArg(t, "GO_IMAGE")
	}
	if exec.Command(tool, "image", "inspect", goImage).Run() != nil {
		if out, err := exec.Command(tool, "pull", goImage).CombinedOutput(); err != nil {
			t.Skipf("the builder image %s is not here and %s cannot pull it (%v: %s): the image is not built; set PROXY_GO_IMAGE to a local image with the Go toolchain to build it",
				goImage, tool, err, strings.TrimSpace(lastLine(string(out))))
		}
	}

	tag := "localhost/proxy-server:test"
	flags := "--build-arg GO_IMAGE=" + goImage
	if tool == "podman" {
		// chroot isolation runs the build's RUN steps without an OCI
		// runtime, which sandboxes without a usable cgroup setup lack.
		flags += " --isolation chroot"
	}
	make := exec.Command("make", "-C", "..", "image", "CONTAINER="+tool, "IMAGE="+tag, "IMAGE_FLAGS="+flags, "VERSION=v0.0.0-image")
	if out, err := make.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(tool, "rmi", "-f", tag).Run() })

	out, err := exec.Command(tool, "create", tag).Output()
	if err != nil {
		t.Fatalf("%s create: %v", tool, err)
	}
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(tool, "rm", "-f", id).Run() })
	dir := t.TempDir()
	for src, dst := range map[string]string{
		"/usr/local/bin/proxy-server":        "proxy-server",
		"/etc/proxy/config.yaml":             "config.yaml",
		"/etc/ssl/certs/ca-certificates.crt": "ca-certificates.crt",
	} {
		if out, err := exec.Command(tool, "cp", id+":"+src, filepath.Join(dir, dst)).CombinedOutput(); err != nil {
			t.Fatalf("%s cp %s: %v\n%s", tool, src, err, out)
		}
	}
	bin := filepath.Join(dir, "proxy-server")
	if b, err := exec.Command(bin, "-version").CombinedOutput(); err != nil || !strings.HasPrefix(string(b), "proxy-server v0.0.0-image ") {
		t.Errorf("-version: %q, %v", b, err)
	}
	validate := exec.Command(bin, "-validate", "-config", filepath.Join(dir, "config.yaml"))
	validate.Env = []string{"ADMIN_TOKEN=secret", "BACKEND_URL=http://10.0.0.5:9001"}
	if b, err := validate.CombinedOutput(); err != nil {
		t.Errorf("-validate the shipped config: %v\n%s", err, b)
	}

	conf, err := exec.Command(tool, "image", "inspect", "--format", "{{.Config.User}} {{.Config.Entrypoint}} {{.Config.Cmd}}", tag).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(conf)), "65532:65532 [/usr/local/bin/proxy-server] [-config /etc/proxy/config.yaml]"; got != want {
		t.Errorf("image config %q, want %q", got, want)
	}
}

// dockerfileArg is the default of an ARG in ../Dockerfile.
func dockerfileArg(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "ARG "+name+"="); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("Dockerfile has no ARG %s=", name)
	return ""
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
