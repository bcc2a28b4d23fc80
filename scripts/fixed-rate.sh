#!/usr/bin/env bash
# fixed-rate.sh measures the proxy beside nginx below saturation: for each
# rate in RATES it runs ../shared/bench/peers.sh in its fixed-rate mode
# (RATE=N: open loop, CONNS keep-alive connections, latency from each
# request's due time), unpinned, ours and nginx interleaved repetition by
# repetition, and prints one summary line per rate and peer: median
# [min..max] of CPU µs per request and p99, and each peer/nginx of the medians.
# With NEIGHBOUR=N it runs N busy loops at nice 0 for the whole run, as a
# host's other work would: what the proxy does when it does not get the
# CPU whenever it wants it.
#
# Environment (defaults in brackets); the rest of peers.sh's settings
# (DURATION, WARMUP, CONNS, BODY...) pass through:
#   RATES     [200 2000 10000]   requests/s, one harness run each
#   REPS      [3]                repetitions per rate
#   NEIGHBOUR [0]                busy loops beside the run (2 fills this machine)
#   PEERS     [nginx project]    e.g. "nginx project project-gmp1" (GOMAXPROCS=1)
#   PROXY_BIN []                 a built proxy to measure; unset: build this tree
#   BENCH     [../shared/bench]  where peers.sh lives
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${BENCH:-$ROOT/../shared/bench}
[[ -x $BENCH/peers.sh ]] || { echo "fixed-rate: $BENCH/peers.sh not found" >&2; exit 1; }
command -v nginx >/dev/null 2>&1 || { echo "fixed-rate: nginx not installed" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fixed-rate.XXXXXX")
loops=()
cleanup() {
  for p in ${loops[@]+"${loops[@]}"}; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

bin=${PROXY_BIN:-}
if [[ -z $bin ]]; then
  (cd "$ROOT" && go build -trimpath -o "$tmp/proxy-server" .)
  bin=$tmp/proxy-server
fi
cp "$ROOT/scripts/bench.yaml" "$tmp/bench.yaml"

for ((i = 0; i < ${NEIGHBOUR:-0}; i++)); do
  nice -n 0 bash -c 'while :; do :; done' &
  loops+=("$!")
done

export PEERS=${PEERS:-nginx project} PIN=0 REPS=${REPS:-3}
export PROJECT_CMD="$bin -config $tmp/bench.yaml"
for rate in ${RATES:-200 2000 10000}; do
  out=$(RATE=$rate "$BENCH/peers.sh" 2>"$tmp/log") || { cat "$tmp/log" >&2; exit 1; }
  tsv=$(grep -o '/[^ ]*\.tsv' <<<"$out" | head -n 1)
  echo "rate $rate neighbour ${NEIGHBOUR:-0}: $tsv"
  # Columns by name from the TSV's header: peer, proxy_us_per_req, p99_ms.
  awk -F'\t' -v rate="$rate" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { p = $col["peer"]; n[p]++; cpu[p, n[p]] = $col["proxy_us_per_req"]; p99[p, n[p]] = $col["p99_ms"]; rps[p, n[p]] = $col["rps"] }
    function med(a, p, k,   i, j, t, v) {
      for (i = 1; i <= k; i++) v[i] = a[p, i]
      for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
      lo = v[1]; hi = v[k]
      return (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
    }
    END {
      for (p in n) {
        c = med(cpu, p, n[p]); cl = lo; ch = hi
        q = med(p99, p, n[p]); ql = lo; qh = hi
        r = med(rps, p, n[p])
        mc[p] = c; mq[p] = q
        printf "  %-8s %6s req/s  CPU %7.1f µs/req [%s..%s]  p99 %7.2f ms [%s..%s]\n", p, r, c, cl, ch, q, ql, qh
      }
      for (p in mc)
        if (p != "nginx" && ("nginx" in mc) && mc["nginx"] > 0)
          printf "  %s/nginx: CPU %.2fx, p99 %+.2f ms\n", p, mc[p] / mc["nginx"], mq[p] - mq["nginx"]
    }' "$tsv"
done
