#!/usr/bin/env bash
# bench-peers.sh runs ../shared/bench/peers.sh with this project's binary as
# the "project" peer, beside nginx, HAProxy, Caddy and the naive Go proxy
# ("floor"), and prints the harness's table and the path of its TSV.
#
# Environment (defaults in brackets); everything else peers.sh reads
# (DURATION, WARMUP, CONNS, BODY, PIN, TOOL...) is passed through untouched:
#   REPS   [3]     repetitions; compare medians of one run only
#   PEERS  [nginx haproxy caddy floor project], without those not installed
#   BENCH  [../shared/bench]  where peers.sh lives
#   PROJECT_EXTRA []  YAML lines appended to the generated config (e.g. to
#                     turn on the admin listener with pprof while profiling)
#
# When nginx or HAProxy is missing it prints how to install them and exits
# 0, so `make bench` still succeeds on a machine without them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${BENCH:-$ROOT/../shared/bench}
if [[ ! -x $BENCH/peers.sh ]]; then
  echo "bench-peers: $BENCH/peers.sh not found; set BENCH to the shared bench folder" >&2
  exit 0
fi

missing=()
for c in nginx haproxy wrk; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
if ((${#missing[@]})); then
  echo "bench-peers: ${missing[*]} not installed; skipping the peer benchmark."
  echo "  install: apt-get update && apt-get install -y wrk nginx haproxy caddy nghttp2-client"
  exit 0
fi

want=${PEERS:-nginx haproxy caddy floor project}
peers=()
for p in $want; do
  case ${p%-gmp*} in
    nginx*) command -v nginx >/dev/null 2>&1 || continue ;;
    haproxy*) command -v haproxy >/dev/null 2>&1 || continue ;;
    caddy) command -v caddy >/dev/null 2>&1 || { echo "bench-peers: caddy not installed; leaving it out" >&2; continue; } ;;
  esac
  peers+=("$p")
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-peers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "bench-peers: building the proxy into $tmp" >&2
(cd "$ROOT" && go build -trimpath -o "$tmp/proxy-server" .)

# The case the harness expects (scripts/bench.yaml), copied so that
# PROJECT_EXTRA can add to it.
cp "$ROOT/scripts/bench.yaml" "$tmp/bench.yaml"
if [[ -n ${PROJECT_EXTRA:-} ]]; then
  # The config loader rejects a key given twice: drop our admin line when
  # the extra lines bring their own.
  if grep -q '^admin:' <<<"$PROJECT_EXTRA"; then sed -i '/^admin:/d' "$tmp/bench.yaml"; fi
  printf '%s\n' "$PROJECT_EXTRA" >>"$tmp/bench.yaml"
fi
"$tmp/proxy-server" -validate -config "$tmp/bench.yaml" >/dev/null

export PEERS="${peers[*]}"
export REPS=${REPS:-3}
export PROJECT_CMD="$tmp/proxy-server -config $tmp/bench.yaml"
# peers.sh prints the table and, last, the TSV path ("TSV: FILE").
"$BENCH/peers.sh"
