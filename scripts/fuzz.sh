#!/bin/bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan in a build directory of their own, then runs
# each for SECONDS on a fresh copy of its seed corpus. Fails if any target crashes, leaks, hangs, allocates over
# 128 MiB at once or trips a sanitizer; prints each target's exec count. docs/testing.md, "Fuzzing", says how to
# run long and how to keep a crash as a regression seed.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET (60)] [BUILD_DIR (build-fuzz, relative to the repository)]
# SECONDS 0 only replays each corpus (the regression check after adding a crash input). FUZZERS="epoch_file config"
# limits the run to those targets.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
build=${2:-build-fuzz}
[[ "$build" = /* ]] || build="$root/$build"
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: SECONDS must be a number, got '$seconds'" >&2; exit 2; }

for tool in clang clang++; do
  command -v "$tool" >/dev/null ||
    { echo "fuzz.sh: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

# Each target's longest input: the protocol's line limit (kMaxMessageBytes, plus the stream target's two
# control bytes), the seeds' size for epoch files, a generous config file, a few hundred guest actions for
# virtio_blk. And its dictionary, if any.
declare -A max_len=([control_request]=65536 [control_reply]=65536 [control_stream]=65538 [epoch_file]=65536
                    [config]=8192 [virtio_blk]=4096)
declare -A dict=([control_request]=control.dict [control_reply]=control.dict [control_stream]=control.dict
                 [config]=config.dict)
read -r -a targets <<<"${FUZZERS:-control_request control_reply control_stream epoch_file config virtio_blk}"
for name in "${targets[@]}"; do
  [[ -n ${max_len[$name]:-} ]] || { echo "fuzz.sh: unknown target '$name' (see tests/fuzz)" >&2; exit 2; }
done

start=$(date +%s)
mkdir -p "$build"
# -O1 without NDEBUG: asserts stay on, and the build is quicker than -O2. Only the fuzz targets and the libraries
# they link are built.
{
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCKPT_FUZZ=ON -DCMAKE_BUILD_TYPE=Fuzz \
    -DCMAKE_CXX_FLAGS_FUZZ="-O1 -g" -DCMAKE_ASM_FLAGS_FUZZ="-g" &&
    cmake --build "$build" --target "${targets[@]/%/_fuzzer}" -j "$(nproc)"
} >"$build/fuzz-build.log" 2>&1 || { cat "$build/fuzz-build.log" >&2; echo "fuzz.sh: the build failed" >&2; exit 1; }
echo "fuzz.sh: configured and built in $(( $(date +%s) - start )) s ($build)"

symbolizer=/usr/lib/llvm-14/bin/llvm-symbolizer
[[ -x $symbolizer ]] && export ASAN_SYMBOLIZER_PATH=$symbolizer UBSAN_SYMBOLIZER_PATH=$symbolizer
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

failed=()
for name in "${targets[@]}"; do
  # The checked-in corpus is never written to: the run works on a copy, which stays for inspection (and for a
  # -merge into the checked-in seeds after a long run).
  work=$build/fuzz-corpus/$name
  artifacts=$build/fuzz-artifacts/$name
  log=$build/fuzz-logs/$name.log
  rm -rf "$work" "$artifacts"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  cp -r "$root/tests/fuzz/corpus/$name/." "$work/"
  dict_arg=()
  [[ -n ${dict[$name]:-} ]] && dict_arg=(-dict="$root/tests/fuzz/${dict[$name]}")
  duration=(-max_total_time="$seconds")
  [[ $seconds -gt 0 ]] || duration=(-runs=0)  # libFuzzer reads max_total_time=0 as "no limit"
  # One allocation over 128 MiB from an input of at most 64 KiB is a length field trusted too early: a failure.
  rc=0
  "$build/tests/fuzz/${name}_fuzzer" "${duration[@]}" -max_len="${max_len[$name]}" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=128 -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict_arg[@]}" \
    "$work" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  corpus=$(find "$work" -type f | wc -l)
  if [[ $rc -eq 0 ]]; then
    printf 'fuzz.sh: %-16s ok      %10s execs in %s s, corpus %s\n' "$name" "${execs:-?}" "$seconds" "$corpus"
  else
    printf 'fuzz.sh: %-16s FAILED  %10s execs (exit %s); log %s\n' "$name" "${execs:-?}" "$rc" "$log"
    # The report from its first line (the stack is what matters), else the end of the log.
    first=$(grep -n -m1 -E 'ERROR: |runtime error:|Deadly signal|ALARM:' "$log" | cut -d: -f1 || true)
    if [[ -n $first ]]; then sed -n "${first},$((first + 59))p" "$log" >&2; else tail -n 60 "$log" >&2; fi
    find "$artifacts" -type f -printf '  artifact: %p\n' >&2
    failed+=("$name")
  fi
done
echo "fuzz.sh: done in $(( $(date +%s) - start )) s"
[[ ${#failed[@]} -eq 0 ]] || { echo "fuzz.sh: FAILED: ${failed[*]}" >&2; exit 1; }
