# The proxy's container image: compiled with the Go toolchain, run from an
# empty base that holds only the static binary, CA certificates (for https
# servers, Redis over TLS and tracing exporters) and a config.
#
#   make image        # docker or podman, whichever is installed
#   docker run -p 8080:8080 -p 9901:9901 \
#     -e ADMIN_TOKEN=a-long-secret -e BACKEND_URL=http://10.0.0.5:9001 proxy-server
#
# The config is /etc/proxy/config.yaml (deploy/container/config.yaml):
# mount your own over it. There is no HEALTHCHECK on purpose: orchestrators
# probe GET /readyz on the admin port, which answers 503 from the moment
# SIGTERM starts the drain. Give `docker stop` a grace period longer than
# the config's shutdown_timeout.

# GO_IMAGE is any image with the Go toolchain of go.mod's go line and the
# Debian CA bundle at /etc/ssl/certs.
ARG GO_IMAGE=docker.io/library/golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
WORKDIR /src
# Modules first, so editing the code does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/tbsphathuynh/proxy/internal/cli.Version=${VERSION} -X github.com/tbsphathuynh/proxy/internal/cli.Commit=${COMMIT}" \
      -o /out/usr/local/bin/proxy-server . \
 && mkdir -p /out/etc/proxy /out/etc/ssl/certs \
 && cp deploy/container/config.yaml /out/etc/proxy/config.yaml \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ca-certificates.crt \
 && echo 'nonroot:x:65532:65532:proxy:/nonexistent:/sbin/nologin' > /out/etc/passwd \
 && echo 'nonroot:x:65532:' > /out/etc/group

FROM scratch
COPY --from=build /out/ /
# Not root: the ports are above 1024, and the process writes no files
# unless the config names an access log path (mount a volume for it).
USER 65532:65532
EXPOSE 8080 9901
# The default, written out: SIGTERM drains in-flight requests, then exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/proxy-server"]
CMD ["-config", "/etc/proxy/config.yaml"]
