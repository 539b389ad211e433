#!/usr/bin/env bash
# A/B of whole trees on one example server: alternating runs of each tree's
# examples/EXAMPLE under echo-load, printing msgs/s and the server's CPU per message.
#
#   bench/ab-tree.sh BACKEND EXAMPLE CONNS SIZE SECS ROUNDS TREE [TREE…]
#   e.g. bench/ab-tree.sh epoll echo-server.ts 64 64 2 5 /tmp/base .
#
# Each TREE is a checkout (a `git archive` of another commit, or `.`) whose
# examples/EXAMPLE takes a port as its first argument (0 = any) and prints a line ending
# in the port it listens on ("listening on 127.0.0.1:PORT"). CPU per message is the
# server process's utime+stime (from /proc/PID/stat, in clock ticks) over the run,
# divided by the messages echo-load counted. echo-load is bench/.anchors/echo-load
# (bun run bench/echo.ts builds it from ../shared/tools).
set -euo pipefail
if [ $# -lt 7 ]; then sed -n '2,12p' "$0"; exit 2; fi
backend=$1; ex=$2; conns=$3; size=$4; secs=$5; rounds=$6; shift 6
here="$(cd "$(dirname "$0")" && pwd)"
load="$here/.anchors/echo-load"
[ -x "$load" ] || { echo "ab-tree: $load missing (run bun run bench/echo.ts once to build the anchors)" >&2; exit 2; }
tick=$(getconf CLK_TCK)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq 1 "$rounds"); do
  for root in "$@"; do
    : > "$out"
    REEL_BACKEND=$backend bun run "$root/examples/$ex" 0 > "$out" 2>/dev/null &
    pid=$!
    for _ in $(seq 1 100); do grep -q listening "$out" && break; sleep 0.1; done
    port=$(grep -m1 listening "$out" | grep -o '[0-9]*$')
    t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
    res=$("$load" 127.0.0.1 "$port" "$conns" "$size" "$secs" | grep -o 'msgs/s=[0-9]*')
    t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    n=${res#msgs/s=}
    echo "round $r $root msgs/s=$n cpu_us/msg=$(awk -v a="$t0" -v b="$t1" -v n="$n" -v s="$secs" -v t="$tick" 'BEGIN { printf "%.2f", (b - a) * 1e6 / t / (n * s) }')"
  done
done
