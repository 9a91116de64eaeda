#!/usr/bin/env bash
# Runs the store benchmark with its defaults (2 GiB image, base + 20 deltas, 3 alternating repeats against the zstd
# CLI). Usage: bench/run.sh [BUILD_DIR] [store_bench options...]   (`make bench` passes its BUILD_DIR.)
# Builds first when the binary is missing; otherwise brings it up to date with a quick incremental build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
shift $(( $# > 0 ? 1 : 0 ))
[[ "$build" = /* ]] || build="$root/$build"

if [[ ! -x "$build/bench/store_bench" ]]; then
  make -C "$root" build BUILD_DIR="$build"
else
  cmake --build "$build" --target store_bench -j "$(nproc)" >/dev/null
fi
command -v zstd >/dev/null || { echo "bench/run.sh: the zstd CLI is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $build/bench/store_bench $*"
exec "$build/bench/store_bench" "$@"
