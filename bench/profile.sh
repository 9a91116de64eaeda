#!/bin/bash
# CPU profiles (perf, on-CPU samples of every thread and child) of the phases behind the goals the suite misses:
#   bench/profile.sh BUILD_DIR [OUT_FILE]
# base     store_bench's timed base writes: the store (threads store_bench, ckpt-compressN, iou-wrk) and
#          `zstd -1 -T2` (comm zstd) side by side
# restore  store_bench's timed restores: restore_to_file of base + 10 deltas (ckpt-restoreN) and `zstd -d`
# rate     epoch_rate_bench's measured windows, 4 GiB guest: the Session's threads (ckpt-epochs: capture,
#          ckpt-writer and ckpt-compressN: epoch writes) and the guest's vcpu0
# perf samples only inside each phase (bench/perf_window.h). Writes markdown to OUT_FILE (default: stdout). Off-CPU
# time (fdatasync waits, a thread waiting for another) does not show in these profiles: the benchmarks' own phase
# tables give it. Takes about 2 minutes.
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR [OUT_FILE]}
bench=$build/bench
command -v perf >/dev/null || { echo "profile.sh: perf is missing (apt-get install linux-perf)" >&2; exit 1; }
work=$(mktemp -d /var/tmp/bench-profile.XXXXXX)
trap 'rm -rf "$work"' EXIT

# profile PHASE COMMAND...: perf record with sampling off until the benchmark opens its window for PHASE.
profile() {
  local phase=$1
  shift
  mkfifo "$work/$phase.ctl" "$work/$phase.ack"
  CKPT_PERF_PHASE=$phase CKPT_PERF_CTL=$work/$phase.ctl CKPT_PERF_ACK=$work/$phase.ack \
    perf record -q -o "$work/$phase.data" -F 1999 -D -1 --control "fifo:$work/$phase.ctl,$work/$phase.ack" -- \
    "$@" >"$work/$phase.log" 2>&1 || { echo "profile.sh: $phase: $* failed:" >&2; tail -20 "$work/$phase.log" >&2; exit 1; }
}

# report PHASE TITLE: where the samples went, by process/thread name and library, then the hottest symbols.
report() {
  local phase=$1 title=$2
  echo "### $title"
  echo
  echo '```'
  perf report -i "$work/$phase.data" --stdio --no-children --sort comm,dso --percent-limit 1 2>/dev/null |
    grep -E '^ +[0-9]' | head -16
  echo
  perf report -i "$work/$phase.data" --stdio --no-children --sort comm,dso,sym --percent-limit 1.2 2>/dev/null |
    grep -E '^ +[0-9]' | sed -E 's/ +$//' | head -24
  echo '```'
  echo
}

# The report goes to OUT_FILE, or to stdout as it is (reopening /dev/stdout would truncate a file it points to).
if [[ -n "${2:-}" ]]; then exec 3>"$2"; else exec 3>&1; fi
profile base "$bench/store_bench" --size-mib 512 --deltas 10 --repeats 2 --warmup 0 --dir "$work/store-base"
profile restore "$bench/store_bench" --size-mib 512 --deltas 10 --repeats 2 --warmup 0 --dir "$work/store-restore"
profile rate "$bench/epoch_rate_bench" --memory-mib 4096 --tune-s 4 --windows 3 --dir "$work/rate"
{
  echo "Command: \`bench/profile.sh $build\`, perf $(perf version 2>/dev/null | awk '{print $3}'), $(date -u +%FT%TZ)."
  echo "Samples at 1999 Hz on every CPU-using thread of the benchmark and its children, only inside the phase;"
  echo "libzstd has no symbols here (Debian ships them in a separate dbgsym package), so its share shows as one dso."
  echo
  report base "Base write: the store against zstd -1 -T2 (comm zstd)"
  report restore "Restore of base + 10 deltas: the store (ckpt-restoreN) against zstd -d (comm zstd)"
  report rate "Epoch rate, 4 GiB guest: capture (ckpt-epochs), epoch write (ckpt-writer, ckpt-compressN), guest (vcpu0)"
} >&3
