#!/usr/bin/env bash
# CI for the kqueue backend on Linux: builds libkqueue (vendored in ../shared/vendor) into a
# temporary directory and runs every suite on kqueue over it (docs/platforms.md explains the
# profile and what libkqueue does differently from the kernels). Two passes:
#   1. the default mode over libkqueue (level-triggered EV_DISPATCH knotes), whole suite;
#   2. the kernels' mode (EV_CLEAR), whole suite, with the load test sized to one event
#      list (200 connections): libkqueue loses EV_CLEAR events once more are ready than one
#      kevent() returns (upstream issue #89), which macOS and FreeBSD do not.
# Run from the repository root or anywhere (it cds there); needs gcc, and cmake (installed
# with apt-get when missing). Each pass is bounded: blockOn cannot be interrupted by bun's
# per-test timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname -s)" != Linux ]; then
  echo "ci-kqueue: not Linux: the kernel's kqueue is used as is, nothing to build"
  exit 0
fi

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
if [ "${#need[@]}" -gt 0 ]; then
  echo "ci-kqueue: installing ${need[*]}"
  (apt-get update -qq && apt-get install -y -qq "${need[@]}") >/dev/null
fi

lib=$(mktemp -d)
trap 'rm -rf "$lib"' EXIT
../shared/tools/build-libkqueue.sh "$lib" >/dev/null
export REEL_KQUEUE_LIB="$lib/libkqueue.so"
echo "ci-kqueue: libkqueue built ($REEL_KQUEUE_LIB)"

REEL_BACKEND=kqueue timeout --signal=KILL 300 bun test
REEL_BACKEND=kqueue REEL_KQUEUE_MODE=clear REEL_LOAD_CONNS=200 timeout --signal=KILL 300 bun test
