#!/usr/bin/env bash
# idle-conns.sh measures the proxy's memory per idle keep-alive client
# connection: it builds the binary and runs internal/loadtest's
# TestIdleConnectionMemory, which opens N connections (default 10000) to
# the proxy on loopback and reads its VmRSS, and the CPU it spends while
# they sit idle (none is right). The open-file limit must allow
# N plus a few hundred descriptors per process; the test raises the soft
# limit up to the hard one.
#
# Environment: N [10000], MAX_KIB (fail above this many KiB per
# connection; unset: only report), GOGC/GOMEMLIMIT (passed to the proxy).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/idle-conns.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$ROOT"
go build -trimpath -o "$tmp/proxy-server" .
PROXY_BIN="$tmp/proxy-server" PROXY_IDLE_CONNS="${N:-10000}" PROXY_IDLE_MAX_KIB="${MAX_KIB:-}" \
  go test -run '^TestIdleConnectionMemory$' -count=1 -v ./internal/loadtest
