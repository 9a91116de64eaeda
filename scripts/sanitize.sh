#!/bin/bash
# Builds the tree with a sanitizer in a build directory of its own and runs the test suite there (docs/testing.md,
# "Sanitizers"):
#   scripts/sanitize.sh asan [BUILD_DIR]        AddressSanitizer + LeakSanitizer + UBSan (default dir build-asan)
#   scripts/sanitize.sh tsan [BUILD_DIR]        ThreadSanitizer (default dir build-tsan)
#   scripts/sanitize.sh --ci asan [BUILD_DIR]   the subset `make test` runs: only the CI_TARGETS below are built
# Extra ctest arguments go in CTEST_ARGS (e.g. CTEST_ARGS="-R Daemon"). The first report fails the test that hit
# it, reports from the ckptd and ckpt processes the end-to-end tests spawn included: they inherit the options below,
# exit non-zero, and tests/daemon/daemon_process.cpp also fails a test whose daemon log holds a report.
set -euo pipefail
cd "$(dirname "$0")/.."

ci=0
if [ "${1:-}" = "--ci" ]; then
  ci=1
  shift
fi
kind=${1:-}
case "$kind" in
  asan | tsan) ;;
  *)
    echo "usage: $0 [--ci] asan|tsan [BUILD_DIR]" >&2
    exit 2
    ;;
esac
build=${2:-build-$kind}
jobs=${JOBS:-$(nproc)}

# The CI subset: the store, the software VMM and the daemon in-process and end to end (its ckptd is built with
# them), plus the small metrics and systemd-notify suites. Left out to keep `make test` near 30 minutes on 2 cores:
# the crash-consistency suite, the ckpt CLI and the 100,000-epoch scale test (a long build, and their code paths are the store's and the daemon's
# tested here), the workload model (single-threaded arithmetic) and the exhaustive corruption sweep
# CorruptionTest.EveryFlip* (about 3 minutes under ASan; the fuzzers run the same parsers under ASan).
CI_TARGETS=(snapshot_tests vmm_software_tests daemon_config_tests daemon_control_tests daemon_end_to_end_tests
            daemon_lazy_restore_tests daemon_staging_area_tests
            daemon_metrics_tests daemon_service_tests daemon_compaction_tests ckptd)
CI_EXCLUDE='_NOT_BUILT$|^cli\.|^scale\.|^CorruptionTest\.EveryFlip'

# Fail hard: stop at the first report, with a stack.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp"
# The long randomized suites run a tenth or so of their default counts (each case is 5 to 40 times slower under a
# sanitizer): every path still runs; the normal build runs the full counts. Set them to override.
export CKPT_CORRUPTION_FLIPS=${CKPT_CORRUPTION_FLIPS:-1000}
export CKPT_CRASH_ITERATIONS=${CKPT_CRASH_ITERATIONS:-10}
export CKPT_POWER_LOSS_ITERATIONS=${CKPT_POWER_LOSS_ITERATIONS:-5}
# ckptd starts in about 1 s under TSan: kills spread over 3 s so that most land after the first epoch.
if [ "$kind" = tsan ]; then export CKPT_CRASH_WINDOW_MS=${CKPT_CRASH_WINDOW_MS:-3000}; fi

start=$(date +%s)
# -O1: a third less compile time than -O2 under the sanitizers' instrumentation, and reports keep usable stacks.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g -DNDEBUG" \
  -DCKPT_SANITIZE="$kind" >/dev/null
# The nested-KVM tests (label kvm) run static binaries inside a VM, which a sanitizer build cannot link; fuzz
# targets have their own build (scripts/fuzz.sh); sanitize would be this script again.
exclude_labels='kvm|fuzz|sanitize'
if [ "$ci" = 1 ]; then
  cmake --build "$build" -j "$jobs" --target "${CI_TARGETS[@]}"
  filter=(-E "$CI_EXCLUDE")
else
  cmake --build "$build" -j "$jobs"
  filter=()
fi
built=$(date +%s)
echo "sanitize.sh: $kind build took $((built - start)) s"

rc=0
# shellcheck disable=SC2086  # CTEST_ARGS is a list of arguments
(cd "$build" && ctest --output-on-failure -j "$jobs" -LE "$exclude_labels" "${filter[@]}" ${CTEST_ARGS:-}) || rc=$?
echo "sanitize.sh: $kind tests took $(($(date +%s) - built)) s (exit $rc)"
exit $rc
