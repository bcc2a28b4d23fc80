#!/usr/bin/env bash
# cpu-split.sh compares proxies by the user and system CPU time they spend
# per request, in interleaved repetitions: the peer harness reports their
# sum only, and on a noisy machine only peers measured side by side can be
# compared.
#
# Usage: scripts/cpu-split.sh [REPS] PEER...
#   PEER is "nginx" (one worker, the harness's configuration) or the path
#   of a proxy binary, started as BINARY -config CONFIG.
#
# Environment (defaults in brackets):
#   DURATION [5]  measured seconds per repetition, after 1 s of warm-up
#   CONNS [64]    keep-alive connections
#   PAUSE [0]     milliseconds each connection pauses between an answer and
#                 its next request, to measure below saturation (10 gives
#                 about 5,600 req/s, a quarter of nginx's saturated rate)
#   CONFIG        config for binaries [scripts/bench.yaml, the harness's case]
#   BENCH_STATE   where the harness keeps its backend binary
#                 [~/.cache/proxy-bench]; run `make bench-peers` once to
#                 build it
#
# As the harness: the proxy on CPU 1, wrk and two backends (1 KiB answers)
# on CPU 0, 64 keep-alive connections. For each repetition and peer it
# prints req/s, user and system CPU µs per request (from /proc/PID/stat),
# wrk's p99, how often the proxy went to sleep (voluntary context
# switches) per request, and what the backends spent per request: CPU µs,
# and how often they went to sleep, which says how well the proxy's
# writes let them batch their work.
set -euo pipefail

reps=3
if [[ ${1:-} =~ ^[0-9]+$ ]]; then
  reps=$1
  shift
fi
if (($# == 0)); then
  sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
for c in wrk taskset curl; do
  command -v "$c" >/dev/null || { echo "cpu-split: $c not installed" >&2; exit 1; }
done
state=${BENCH_STATE:-$HOME/.cache/proxy-bench}
backend=$state/bin/backend
[[ -x $backend ]] || { echo "cpu-split: $backend missing; run make bench-peers once" >&2; exit 1; }
duration=${DURATION:-5}
conns=${CONNS:-64}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cpu-split.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

config=${CONFIG:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bench.yaml}
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log error;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  client_body_temp_path $tmp/nginx;
  proxy_temp_path $tmp/nginx;
  upstream be {
    server 127.0.0.1:19001;
    server 127.0.0.1:19002;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:18080;
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF

for port in 19001 19002; do
  taskset -c 0 "$backend" -addr "127.0.0.1:$port" -size 1k -impl raw >/dev/null 2>&1 &
  pids+=($!)
done

script=()
if ((${PAUSE:-0} > 0)); then
  printf 'function delay()\n  return %d\nend\n' "$PAUSE" >"$tmp/pause.lua"
  script=(-s "$tmp/pause.lua")
fi

# sleeps prints the voluntary context switches of process $1 so far.
sleeps() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/ {s += $2} END {print s + 0}'; }

# backends prints the backends' CPU ticks and voluntary context switches
# so far.
backends() {
  local cpu=0 sleeps=0 p
  for p in "${pids[0]}" "${pids[1]}"; do
    cpu=$((cpu + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    sleeps=$((sleeps + $(sleeps "$p")))
  done
  echo "$cpu $sleeps"
}

tck=$(getconf CLK_TCK)
url=http://127.0.0.1:18080/
for ((i = 1; i <= reps; i++)); do
  for peer in "$@"; do
    if [[ $peer == nginx ]]; then
      taskset -c 1 nginx -c "$tmp/nginx/nginx.conf" >/dev/null 2>&1 &
    else
      taskset -c 1 "$peer" -config "$config" >/dev/null 2>&1 &
    fi
    p=$!
    pids+=("$p")
    up=0
    for ((j = 0; j < 50; j++)); do
      if curl -fs -o /dev/null "$url"; then up=1; break; fi
      sleep 0.1
    done
    ((up)) || { echo "cpu-split: $peer did not answer on $url" >&2; exit 1; }
    taskset -c 0 wrk -t1 -c"$conns" -d1s "$url" >/dev/null
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$p/stat")
    read -r b0 v0 < <(backends)
    z0=$(sleeps "$p")
    out=$(taskset -c 0 wrk -t1 -c"$conns" -d"${duration}s" --latency "${script[@]}" "$url")
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$p/stat")
    read -r b1 v1 < <(backends)
    z1=$(sleeps "$p")
    kill "$p"
    wait "$p" 2>/dev/null || true
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    awk -v n="$n" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v t="$tck" -v d="$duration" \
      -v peer="$(basename "$peer")" -v rep="$i" -v p99="$p99" -v b=$((b1 - b0)) -v v=$((v1 - v0)) -v z=$((z1 - z0)) 'BEGIN {
        printf "rep %d  %-14s %7.0f req/s  user %5.1f  sys %5.1f  total %5.1f us/req  p99 %s  sleeps/req %.3f  backends %5.1f us/req %.2f sleeps/req\n",
          rep, peer, n / d, u / t * 1e6 / n, s / t * 1e6 / n, (u + s) / t * 1e6 / n, p99, z / n, b / t * 1e6 / n, v / n
      }'
  done
done
