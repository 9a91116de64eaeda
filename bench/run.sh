#!/usr/bin/env bash
# The performance suite: every benchmark in bench/, each comparing ckptd with a peer or a floor measured in the same
# run, written to bench/RESULTS.md (machine, load, commands, figures). `make bench` runs it with $(BUILD_DIR).
# Usage: bench/run.sh [BUILD_DIR] [--quick] [--only NAMES] [--out FILE]
#   --quick       smaller sample counts and store image (a smoke run of ~5 minutes; figures are noisier)
#   --only NAMES  comma-separated subset of: pause,rate,memory,micro,store,restore,linux,long,profile; also nested and disk
#                 (not in the default set: bench/nested_compare.sh, ckptd against QEMU in the nested KVM, ~10
#                 minutes; bench/disk_nested.sh, an epoch with and without disk traffic in the nested KVM, ~5 minutes)
#   --out FILE    where the report goes (default bench/RESULTS.md)
# Environment: STORE_BENCH_ARGS replaces the store benchmark's options (the suite's default: 512 MiB + 10 deltas).
# Builds the benchmark targets first (Release flags come from BUILD_DIR's configuration; a fresh BUILD_DIR is
# configured RelWithDebInfo like `make build`). Takes about 12-15 minutes here.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=build
if [[ $# -gt 0 && "$1" != --* ]]; then build=$1; shift; fi
[[ "$build" = /* ]] || build="$root/$build"
quick=0
only="pause,rate,memory,micro,store,restore,linux,long,profile"
out="$root/bench/RESULTS.md"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --only) only=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "bench/run.sh: unknown option $1 (see the header of bench/run.sh)" >&2; exit 2 ;;
  esac
  shift
done
wants() { [[ ",$only," == *",$1,"* ]]; }

command -v zstd >/dev/null || { echo "bench/run.sh: the zstd CLI is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
targets=(store_bench restore_bench pause_bench epoch_rate_bench ckptd ckpt extend_store guest_memcheck)
grep -q "^benchmark_DIR:.*-NOTFOUND" "$build/CMakeCache.txt" 2>/dev/null || targets+=(micro_bench)
echo "bench/run.sh: building ${targets[*]} in $build" >&2
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" >/dev/null

if [[ $quick = 1 ]]; then
  pause_args=(--samples 12,8,3 --rounds 2 --warmup 1)
  rate_args=(--windows 3 --window-s 2 --tune-s 4)
  memory_seconds=10
  long_args=(2000 20000)
  micro_args=(--benchmark_min_time=0.1 --benchmark_repetitions=3)
  store_args=(--size-mib 512 --deltas 5 --repeats 3)
  restore_args=(--sizes-mib 256,1024 --repeats 3)
  linux_images=6
  linux_pause_args=(--image-samples 12 --rounds 2)
else
  pause_args=()
  rate_args=()
  memory_seconds=20
  long_args=(10000 100000)
  micro_args=(--benchmark_min_time=0.2 --benchmark_repetitions=3)
  # A quarter of the store benchmark's documented image (2 GiB + 20 deltas take 3-5 minutes here, 1 GiB + 10 deltas
  # took 4 minutes under load) keeps the suite within ~15 minutes; the ratios hardly depend on the size.
  # STORE_BENCH_ARGS="--size-mib 2048 --deltas 20" runs the documented one.
  store_args=(--size-mib 512 --deltas 10)
  restore_args=()
  linux_images=11
  linux_pause_args=()
fi
if [[ -n "${STORE_BENCH_ARGS:-}" ]]; then read -r -a store_args <<<"$STORE_BENCH_ARGS"; fi

logs=$(mktemp -d /var/tmp/bench-logs.XXXXXX)
parts="$logs/parts"
mkdir -p "$parts"
suite_start=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# Runs one benchmark: "$name" "$title" command...; its stdout (a markdown section) becomes a part of the report,
# stderr and stdout also go to its log. A failing benchmark is reported, not fatal: the others still run.
run_part() {
  local name=$1 title=$2
  shift 2
  local t0 t1 load0
  load0=$(cut -d' ' -f1-3 /proc/loadavg)
  t0=$(date +%s)
  echo "bench/run.sh: $title: $*" >&2
  if "$@" >"$parts/$name.md" 2> >(tee "$logs/$name.err" >&2); then
    t1=$(date +%s)
    printf '\n_%s: %d s, load average %s at its start._\n' "$title" $((t1 - t0)) "$load0" >>"$parts/$name.md"
  else
    printf '## %s\n\n**FAILED**: `%s` (exit status %d); its log: %s\n' "$title" "$*" $? "$logs/$name.err" >"$parts/$name.md"
  fi
}

wants pause && run_part pause "Epoch pause vs floor" "$build/bench/pause_bench" "${pause_args[@]}"
wants rate && run_part rate "Epoch rate" "$build/bench/epoch_rate_bench" "${rate_args[@]}"
wants memory && run_part memory "Daemon memory" "$root/bench/memory_bench.sh" "$build" "$memory_seconds"
wants long && run_part long "Long chains" "$root/bench/long_store_bench.sh" "$build" "${long_args[@]}"
if wants micro; then
  if [[ -x "$build/bench/micro_bench" ]]; then
    micro() {
      echo "## Micro-benchmarks (Google Benchmark)"
      echo
      echo "Command: \`micro_bench ${micro_args[*]} --benchmark_report_aggregates_only=true\` (bench/micro_bench.cpp);"
      echo "the median and the coefficient of variation (cv) of the repetitions. Time is wall clock, CPU is this"
      echo "thread's: on this loaded machine the two differ."
      echo
      echo '```'
      "$build/bench/micro_bench" "${micro_args[@]}" --benchmark_report_aggregates_only=true | grep -v "_mean\|_stddev"
      echo '```'
    }
    run_part micro "Micro-benchmarks" micro
  else
    printf '## Micro-benchmarks\n\nNot built: Google Benchmark (libbenchmark-dev) was not found when %s was configured.\n' \
      "$build" >"$parts/micro.md"
  fi
fi
if wants store; then
  store() {
    # store_bench prints progress, then its report from the "## store_bench results" line on.
    "$build/bench/store_bench" "${store_args[@]}" | tee "$logs/store.out" /dev/stderr | sed -n '/^## store_bench results/,$p'
    echo
    echo "Command: \`store_bench ${store_args[*]}\` (bench/store_bench.cpp). Its own defaults (2 GiB, 20 deltas) take 3-5 minutes here; \`STORE_BENCH_ARGS=\"--size-mib 2048 --deltas 20\" bench/run.sh\` runs them."
  }
  run_part store "Store vs zstd CLI" store
fi
if wants restore; then
  restore() {
    "$build/bench/restore_bench" "${restore_args[@]}"
    echo
    echo "Command: \`restore_bench ${restore_args[*]}\` (bench/restore_bench.cpp); \`--sizes-mib 16384\` needs ~24 GiB free."
  }
  run_part restore "Restore: lazy against eager" restore
fi
if wants linux; then
  linux() {
    local images="$logs/linux-images" rc=0
    "$root/bench/linux_guest_images.sh" "$images" --images "$linux_images" >&2 || return
    "$build/bench/store_bench" --images "$images" --repeats 3 | tee "$logs/linux.out" /dev/stderr |
      sed -n '/^## store_bench results/,$p' | sed 's/^## store_bench results/## store_bench on a Linux guest'"'"'s memory/' ||
      rc=$?
    echo
    echo "Command: \`bench/linux_guest_images.sh DIR --images $linux_images && store_bench --images DIR --repeats 3\`: Debian's"
    echo "stock kernel and the test initramfs booted under QEMU (TCG) on this host, 384 MiB, memcheck keeping 128 MiB;"
    echo "the base is guest memory once memcheck has filled it, each delta the pages one more memcheck round changed."
    echo
    "$build/bench/pause_bench" --images "$images" "${linux_pause_args[@]}" || rc=$?
    rm -rf "$images"
    return "$rc"
  }
  run_part linux "Store vs zstd CLI and epoch pause on a Linux guest's memory" linux
fi
if wants nested; then
  run_part nested "ckptd and QEMU in the nested KVM" "$root/bench/nested_compare.sh" "$build"
fi
if wants disk; then
  run_part disk "An epoch with and without disk traffic in the nested KVM" "$root/bench/disk_nested.sh" "$build"
fi
if wants profile; then
  profile() {
    echo "## Profiles of the phases behind the missed goals"
    echo
    if command -v perf >/dev/null; then
      "$root/bench/profile.sh" "$build"
    else
      echo "Not run: perf is not installed (\`apt-get install linux-perf\`; bench/profile.sh)."
    fi
  }
  run_part profile "Profiles" profile
fi

suite_end=$(date +%s)
mode=""
[[ $quick = 1 ]] && mode=" --quick"
[[ "$only" != "pause,rate,memory,micro,store,linux,long,profile" ]] && mode+=" --only $only"
kvm_note="No /dev/kvm on this machine: every figure above is the software backend (uffd-wp + PAGEMAP_SCAN)."
[[ -e /dev/kvm ]] && kvm_note="/dev/kvm exists here, but pause_bench and epoch_rate_bench measure the software backend only (their exactness checks read the software vCPU's state blob); KVM tracking-mode timings are not measured by this suite."
{
  echo "# ckptd performance suite results"
  echo
  echo "Generated by \`bench/run.sh $(basename "$build")$mode\` (\`make bench\` runs it without options) on $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' plus uncommitted changes'), in $((suite_end - suite_start)) s."
  echo
  echo "| machine | |"
  echo "|---|---|"
  echo "| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores online |"
  echo "| kernel | $(uname -sr) |"
  echo "| memory | $(awk '/^MemTotal:/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) |"
  echo "| load average (1, 5, 15 min) | $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end |"
  echo "| file system of /var/tmp | $(findmnt -n -o FSTYPE,SOURCE,OPTIONS -T /var/tmp 2>/dev/null | tr -s ' ' || echo unknown) |"
  echo "| build | $build: $(grep -m1 '^CMAKE_BUILD_TYPE:' "$build/CMakeCache.txt" | cut -d= -f2), $("$(grep -m1 '^CMAKE_CXX_COMPILER:' "$build/CMakeCache.txt" | cut -d= -f2)" --version 2>/dev/null | head -1) |"
  echo
  echo "This machine is shared: other jobs use the same 2 CPUs and disk (see the load averages), so each benchmark"
  echo "compares ckptd with its peer or floor in the same run, alternating them, and reports medians and p99s."
  echo "bench/README.md explains each benchmark and what limits the figures."
  echo
  for name in pause rate memory micro store linux long nested disk profile; do
    [[ -f "$parts/$name.md" ]] || continue
    cat "$parts/$name.md"
    echo
  done
  echo "## Tracking modes"
  echo
  echo "$kvm_note The KVM tracking modes (dirty ring, clear-log, dirty-log) are exercised by the nested-KVM harness"
  echo "(scripts/kvm-harness: QEMU TCG with an emulated AMD CPU; test kvm.daemon_pipeline among others), which checks"
  echo "correctness only, never timing: under TCG emulation a pause or an epoch rate says nothing about real hardware."
  echo
  echo "Logs of this run: $logs"
} >"$out"
echo "bench/run.sh: wrote $out ($((suite_end - suite_start)) s; logs in $logs)" >&2
