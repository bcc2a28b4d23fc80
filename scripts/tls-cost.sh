#!/usr/bin/env bash
# tls-cost.sh - what TLS costs each proxy, measured within one run.
#
# Starts the bench harness's two backends and four proxies side by side:
# ours and the harness's floor (net/http + httputil.ReverseProxy), each
# once over plain HTTP and once over TLS 1.3 with the harness's
# certificate. Then, REPS times, runs the same wrk (HTTP/1.1 keep-alive,
# or h2load for h2 over TLS with TOOL=h2load) against each in turn and
# reads each proxy's CPU time from /proc before and after, so every figure
# of a round is taken minutes, not runs, apart. Prints CPU µs per request.
#
# Needs: the harness built once (BENCH_STATE with bin/backend,
# bin/floorproxy and tls/cert.pem, key.pem: run /work/shared/bench/peers.sh
# with TLS=1 once), wrk, h2load for TOOL=h2load, and our binary:
#   go build -o /tmp/proxy-server . && PROXY=/tmp/proxy-server scripts/tls-cost.sh
#
# Environment: PROXY (our binary), BENCH_STATE [~/.cache/proxy-bench],
# REPS [3], DURATION [8] seconds, CONNS [64], TOOL [wrk|h2load], PIN [1]:
# the proxies on CPU 1, load and backends on CPU 0.
set -euo pipefail

STATE=${BENCH_STATE:-$HOME/.cache/proxy-bench}
PROXY=${PROXY:?PROXY=path to our proxy-server binary}
REPS=${REPS:-3}
DURATION=${DURATION:-8}
CONNS=${CONNS:-64}
TOOL=${TOOL:-wrk}
PIN=${PIN:-1}
CERT=$STATE/tls/cert.pem
KEY=$STATE/tls/key.pem
for f in "$STATE/bin/backend" "$STATE/bin/floorproxy" "$CERT" "$KEY"; do
	[ -e "$f" ] || { echo "missing $f: run the harness with TLS=1 once" >&2; exit 1; }
done

tmp=$(mktemp -d)
pids=()
stop() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap stop EXIT INT TERM

on() { # cpu list, then the command
	local cpus=$1
	shift
	if [ "$PIN" = 1 ]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

# spawn starts a command in the background as the process $! names (the
# subshell execs it, and taskset execs it in turn), so its CPU time can be
# read and it can be stopped by that PID.
spawn() { # cpu list, log file, then the command
	local cpus=$1 log=$2
	shift 2
	if [ "$PIN" = 1 ]; then
		(exec taskset -c "$cpus" "$@" >"$log" 2>&1) &
	else
		(exec "$@" >"$log" 2>&1) &
	fi
}

spawn 0 /dev/null "$STATE/bin/backend" -addr 127.0.0.1:19101 -quiet
pids+=($!)
spawn 0 /dev/null "$STATE/bin/backend" -addr 127.0.0.1:19102 -quiet
pids+=($!)

ours() { # port, tls yes/no
	local cfg=$tmp/ours-$1.yaml
	{
		echo "listen: 127.0.0.1:$1"
		echo 'admin: {listen: ""}'
		echo 'servers: [{url: http://127.0.0.1:19101}, {url: http://127.0.0.1:19102}]'
		echo 'load_balancing: {strategy: round_robin}'
		echo 'logging: {level: error, access_log: "off"}'
		[ "$2" = yes ] && echo "tls: {cert_file: \"$CERT\", key_file: \"$KEY\"}"
	} >"$cfg"
	GOMAXPROCS=1 spawn 1 "$tmp/ours-$1.log" "$PROXY" -config "$cfg"
	pids+=($!)
	eval "pid_$1=$!"
}
floor() { # port, tls yes/no
	local extra=()
	if [ "$2" = yes ]; then
		extra=(-tls-cert "$CERT" -tls-key "$KEY")
		[ "$TOOL" = h2load ] && extra+=(-h2)
	fi
	GOMAXPROCS=1 spawn 1 "$tmp/floor-$1.log" "$STATE/bin/floorproxy" -listen "127.0.0.1:$1" -backends 127.0.0.1:19101,127.0.0.1:19102 "${extra[@]}"
	pids+=($!)
	eval "pid_$1=$!"
}

# name port scheme
cases=("ours-plain 18181 http" "ours-tls 18182 https" "floor-plain 18183 http" "floor-tls 18184 https")
ours 18181 no
ours 18182 yes
floor 18183 no
floor 18184 yes
for c in "${cases[@]}"; do
	set -- $c
	for _ in $(seq 100); do
		curl -skf -o /dev/null "$3://127.0.0.1:$2/" && break
		sleep 0.1
	done
	curl -skf -o /dev/null "$3://127.0.0.1:$2/" || { echo "$1 on :$2 does not answer" >&2; exit 1; }
done

ticks() { # pid: utime+stime in clock ticks, all threads
	awk '{print $14 + $15}' "/proc/$1/stat"
}
hz=$(getconf CLK_TCK)

load() { # url: prints the number of requests answered
	if [ "$TOOL" = h2load ]; then
		on 0 h2load -c "$CONNS" -m 1 -D "$DURATION" "$1" 2>&1 | awk '/^requests:/ {print $8}'
	else
		on 0 wrk -t1 -c "$CONNS" -d "${DURATION}s" "$1" 2>&1 | awk '/requests in/ {print $1}'
	fi
}

echo "tool=$TOOL conns=$CONNS duration=${DURATION}s reps=$REPS pin=$PIN $(date -u +%FT%TZ)"
printf '%-4s %-12s %10s %12s\n' rep case req/s cpu_us/req
for rep in $(seq "$REPS"); do
	for c in "${cases[@]}"; do
		set -- $c
		# h2load speaks h2 only over TLS here; the plain cases stay h1.
		if [ "$TOOL" = h2load ] && [ "$3" = http ]; then continue; fi
		pid=$(eval echo "\$pid_$2")
		# A short warm-up, not counted.
		DURATION=2 load "$3://127.0.0.1:$2/" >/dev/null
		t0=$(ticks "$pid")
		n=$(load "$3://127.0.0.1:$2/")
		t1=$(ticks "$pid")
		awk -v r="$rep" -v c="$1" -v n="$n" -v d="$DURATION" -v t=$((t1 - t0)) -v hz="$hz" \
			'BEGIN {printf "%-4s %-12s %10.0f %12.1f\n", r, c, n / d, t / hz * 1e6 / n}'
	done
done
