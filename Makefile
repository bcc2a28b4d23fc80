# proxy: build, test, benchmark, lint, fuzz, release archives and the
# container image.

# VERSION is the v0.x.y tag on HEAD, else dev-<commit> (scripts/version.sh).
VERSION ?= $(shell bash scripts/version.sh)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/tbsphathuynh/proxy/internal/cli.Version=$(VERSION) -X github.com/tbsphathuynh/proxy/internal/cli.Commit=$(COMMIT)
PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
# CONTAINER builds the image: docker when its engine answers, else podman,
# else docker (whose error then says what is missing).
CONTAINER ?= $(shell if docker info >/dev/null 2>&1; then echo docker; elif command -v podman >/dev/null 2>&1; then echo podman; elif command -v docker >/dev/null 2>&1; then echo docker; fi)
IMAGE ?= proxy-server:$(VERSION)
# IMAGE_FLAGS are more flags for the build, e.g. --build-arg GO_IMAGE=...
IMAGE_FLAGS ?=
FUZZTIME ?= 30s
STATICCHECK_VERSION := v0.8.2

.PHONY: build test deps bench bench-go bench-peers lint fuzz dist image clean

build:
	go build -ldflags '$(LDFLAGS)' -o proxy-server .

# test installs what the tests need (redis-server) when it is missing,
# then vets and runs every test, fuzz seed corpora included, under -race,
# twice: with the fast path on, and off (PROXY_FAST_PATH=off: net/http's
# server and Transport alone), so that any difference between the two is
# a failing test; then the allocation tests once more without -race, since the race detector
# makes sync.Pool drop items at random and those tests skip under it, and
# the packages whose socket reads and writes go through internal/sysio,
# whose system calls are syscall's own under it.
test: deps
	go vet ./...
	go test -race -count=1 ./...
	PROXY_FAST_PATH=off go test -race -count=1 ./...
	go test -count=1 -run 'Alloc' ./...
	go test -count=1 ./internal/sysio/ ./internal/h1/ ./internal/forward/

deps:
	@bash scripts/deps.sh

bench: bench-go bench-peers

bench-go:
	go test -run '^$$' -bench . -benchmem ./...

# bench-peers runs ../shared/bench with our binary beside nginx, HAProxy and
# Caddy when they are installed (see docs/performance.md).
bench-peers:
	@bash scripts/bench-peers.sh

lint:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt: files above need formatting" && exit 1)
	go vet ./...
	GOOS=windows go vet ./...
	GOOS=darwin go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	go run -exec 'env GOOS=windows' honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	go run -exec 'env GOOS=darwin' honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# fuzz runs every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$(go list ./...); do \
	  for t in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; go test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# dist writes dist/proxy-server_VERSION_OS_ARCH.tar.gz (.zip for windows)
# for each of PLATFORMS, and dist/SHA256SUMS (scripts/dist.sh).
dist:
	@VERSION='$(VERSION)' COMMIT='$(COMMIT)' PLATFORMS='$(PLATFORMS)' bash scripts/dist.sh

# image builds the container image from Dockerfile as $(IMAGE).
image:
	@test -n "$(CONTAINER)" || { echo "make image: neither docker nor podman is installed"; exit 1; }
	$(CONTAINER) build --build-arg VERSION='$(VERSION)' --build-arg COMMIT='$(COMMIT)' $(IMAGE_FLAGS) -t '$(IMAGE)' .

clean:
	rm -rf proxy-server dist
