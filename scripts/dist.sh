#!/usr/bin/env bash
# Builds the release archives: for each platform in PLATFORMS ("host" for
# this machine's), proxy-server_VERSION_OS_ARCH.tar.gz (.zip for windows)
# holding the binary, LICENSE, README.md and an example config.yaml, in a
# folder of the same name; then SHA256SUMS over them all. Written to OUT
# (default dist/, emptied first).
#
#   VERSION  default: scripts/version.sh (the v0.x.y tag, else dev-<commit>)
#   COMMIT   default: git rev-parse HEAD
#   BUILDENV, BUILDFLAGS  default: CGO_ENABLED=0 (static binaries) and
#            -trimpath (no build paths in them). The tests set both to ""
#            to reuse the build cache of `go test`: either one changes the
#            cache key of every package, and a cold build of them all takes
#            a minute or more.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

VERSION=${VERSION:-$(bash scripts/version.sh)}
COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64}
OUT=${OUT:-dist}
BUILDENV=${BUILDENV-CGO_ENABLED=0}
BUILDFLAGS=${BUILDFLAGS--trimpath}
pkg=github.com/tbsphathuynh/proxy/internal/cli
ldflags="-s -w -X $pkg.Version=$VERSION -X $pkg.Commit=$COMMIT"

case $OUT in /*) ;; *) OUT=$root/$OUT ;; esac
rm -rf "$OUT"
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# GNU tar can leave out the builder's user names; bsdtar takes other flags.
tarflags=()
if tar --version 2>/dev/null | grep -q GNU; then
  tarflags=(--owner=0 --group=0 --numeric-owner --sort=name)
fi

for p in $PLATFORMS; do
  [ "$p" = host ] && p=$(go env GOOS)/$(go env GOARCH)
  os=${p%/*} arch=${p#*/}
  name=proxy-server_${VERSION}_${os}_${arch}
  dir=$work/$name
  mkdir -p "$dir"
  exe=proxy-server
  [ "$os" = windows ] && exe=proxy-server.exe
  echo "build $name"
  env $BUILDENV GOOS="$os" GOARCH="$arch" go build $BUILDFLAGS -ldflags "$ldflags" -o "$dir/$exe" .
  cp LICENSE README.md "$dir/"
  cp config.yaml "$dir/config.yaml"
  if [ "$os" = windows ]; then
    command -v zip >/dev/null || { echo "dist: zip is needed for the windows archives" >&2; exit 1; }
    (cd "$work" && zip -qrX "$OUT/$name.zip" "$name")
  else
    tar "${tarflags[@]}" -C "$work" -czf "$OUT/$name.tar.gz" "$name"
  fi
done

cd "$OUT"
if command -v sha256sum >/dev/null; then
  sha256sum proxy-server_* > SHA256SUMS
else
  shasum -a 256 proxy-server_* > SHA256SUMS
fi
cat SHA256SUMS
