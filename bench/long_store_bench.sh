#!/bin/bash
# Long chains: are list and verify linear in the epoch count? One store, measured at 10,000 and then at 100,000
# epochs of one chain (ckptd writes an idle 8 MiB guest's base; tests/scale/extend_store appends deltas that each
# hold the vCPU state and no pages). Times offline `ckpt list --store`, offline `ckpt verify --store`, offline
# `ckpt restore --store --to` of the newest epoch, and live `ckpt list --json` from a resumed daemon; each the median
# of 3 runs. A time ratio near 10 means linear; near 100 would be quadratic. Prints a markdown section.
# Usage: bench/long_store_bench.sh BUILD_DIR [SMALL] [LARGE]
set -euo pipefail
build=$1
small=${2:-10000}
large=${3:-100000}
ckptd=$build/daemon/ckptd
ckpt=$build/cli/ckpt
dir=$(mktemp -d /var/tmp/ckpt-long-XXXXXX)
trap 'kill -9 $daemon 2>/dev/null || true; rm -rf "$dir"' EXIT
daemon=0
args=(--backend software --store "$dir/s" --socket "$dir/sock" --memory-mib 8 --vcpus 1 --workload idle
      --epoch-ms 3600000 --compact-max-chain 0 --compact-max-read-amplification 0 --retention-keep-last 0)
start() {
  "$ckptd" "${args[@]}" "$@" >>"$dir/ckptd.log" 2>&1 &
  daemon=$!
  for _ in $(seq 1 1200); do "$ckpt" --socket "$dir/sock" status >/dev/null 2>&1 && return; sleep 0.1; done
  echo "ckptd did not start" >&2; exit 1
}
stop() { "$ckpt" --socket "$dir/sock" shutdown --wait >/dev/null; wait $daemon; }
median3() {  # median3 command...: the median wall time of three runs, in seconds
  local times=()
  for _ in 1 2 3; do
    local t0 t1
    t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N)
    times+=("$(echo "$t1 - $t0" | bc)")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 2p
}
declare -A t
measure() {  # measure LABEL
  t[$1,list]=$(median3 "$ckpt" list --store "$dir/s")
  t[$1,verify]=$(median3 "$ckpt" verify --store "$dir/s")
  t[$1,restore]=$(median3 "$ckpt" restore --store "$dir/s" --to "$dir/img")
  start --resume
  t[$1,live]=$(median3 "$ckpt" --socket "$dir/sock" list --json)
  stop
}
start
stop
have=$(ls "$dir/s" | grep -c '\.epoch$')
"$build/tests/extend_store" "$dir/s" $((small - have)) >/dev/null
measure small
have=$(ls "$dir/s" | grep -c '\.epoch$')
"$build/tests/extend_store" "$dir/s" $((large - have)) >/dev/null
measure large
echo "## Long chains: list and verify in time linear in the epoch count"
echo
echo "Command: \`bench/long_store_bench.sh $build $small $large\`. One chain of a store ckptd wrote, extended by"
echo "tests/scale/extend_store; each figure the median of 3 runs. Linear means a ratio near $((large / small))."
echo
echo "| command | $small epochs (s) | $large epochs (s) | ratio |"
echo "|---|---:|---:|---:|"
for op in list verify restore live; do
  name=$(case $op in list) echo "\`ckpt list --store\`";; verify) echo "\`ckpt verify --store\`";;
         restore) echo "\`ckpt restore --store --to\` (newest)";; live) echo "\`ckpt list --json\` (live, paged)";; esac)
  printf '| %s | %.2f | %.2f | %.1f |\n' "$name" "${t[small,$op]}" "${t[large,$op]}" \
    "$(echo "${t[large,$op]} / ${t[small,$op]}" | bc -l)"
done
