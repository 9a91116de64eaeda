#!/bin/bash
# The Linux guest test's core checks in a loop, to count how often the nested emulator kills a guest (docs/testing.md,
# "A Linux guest"): RUNS runs of one tracking mode (boot, snapshots, kill -9 + --resume, live restore, the guest
# stopping itself and a restore after it), up to PER_SEGMENT of them in one L1. When L1 itself dies (the emulator's
# int3 oops), the runs it finished count and the next segment boots a new L1 for the runs left. No check is repeated
# after a guest death (MAX_ATTEMPTS=1): every death is counted, with what L1 traced.
#
# Usage: tests/kvm/linux_guest_loop.sh BUILD_DIR RUNS [--mode ring|clear-log|dirty-log] [--series bookworm|backports]
#                                      [--per-segment N] [--logs DIR] [--restore lazy|eager]
# Each segment's full output goes to DIR/segment-K.log (default: a fresh /var/tmp/linux-guest-loop.XXXXXX).
# Last line: "linux_guest_loop: MODE on SERIES (R restores): N runs, C clean, D guest deaths, F other failures; S segments, L of
# them cut short (L1 died, a timeout, a harness failure)". Exit status 0 iff all RUNS ran and F is 0 (deaths are the
# emulator's: reported, not failed); 125 if it stopped early (three segments in a row finished no run).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage="usage: linux_guest_loop.sh BUILD_DIR RUNS [--mode M] [--series S] [--per-segment N] [--logs DIR] [--restore R]"
build=${1:?$usage}
runs=${2:?$usage}
shift 2
mode=ring series=backports per_segment=20 logs="" restore=lazy
while [ $# -gt 0 ]; do
	case "$1" in
	--mode) mode=${2:?}; shift 2 ;;
	--series) series=${2:?}; shift 2 ;;
	--per-segment) per_segment=${2:?}; shift 2 ;;
	--logs) logs=${2:?}; shift 2 ;;
	--restore) restore=${2:?}; shift 2 ;;
	*) echo "linux_guest_loop: unknown argument $1 ($usage)" >&2; exit 2 ;;
	esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "linux_guest_loop: RUNS must be a positive number, not '$runs'" >&2; exit 2; }
[[ "$per_segment" =~ ^[1-9][0-9]*$ ]] || { echo "linux_guest_loop: --per-segment must be a positive number" >&2; exit 2; }
case "$mode" in ring | clear-log | dirty-log) ;; *) echo "linux_guest_loop: unknown mode '$mode'" >&2; exit 2 ;; esac
case "$restore" in lazy | eager) ;; *) echo "linux_guest_loop: --restore must be lazy or eager" >&2; exit 2 ;; esac
[ -n "$logs" ] || logs=$(mktemp -d /var/tmp/linux-guest-loop.XXXXXX)
mkdir -p "$logs"

finished=0 clean=0 deaths=0 failures=0 segments=0 cut_short=0 stalled=0
while [ "$finished" -lt "$runs" ]; do
	n=$((runs - finished < per_segment ? runs - finished : per_segment))
	segments=$((segments + 1))
	log=$logs/segment-$segments.log
	modes=()
	for ((i = 0; i < n; i++)); do modes+=("$mode"); done
	# About 2 minutes a run under TCG; the limit leaves room for slow ones.
	RESTORE=$restore MAX_ATTEMPTS=1 KVM_HARNESS_EMULATOR_RETRIES=0 "$here/linux_guest_test.sh" "$build" --series "$series" --no-bzimage --one-l1 \
		--full-mode none --timeout $((n * 240 + 300)) "${modes[@]}" >"$log" 2>&1
	rc=$?
	got=$(grep -c '^linux_guest: run [0-9]* (' "$log")
	c=$(grep -c '^linux_guest: run [0-9]* ([a-z-]*): clean' "$log")
	d=$(grep -c '^linux_guest: run [0-9]* ([a-z-]*): failed: the guest died on its own' "$log")
	clean=$((clean + c)) deaths=$((deaths + d)) failures=$((failures + got - c - d))
	finished=$((finished + got))
	note=""
	if [ "$got" -lt "$n" ]; then
		cut_short=$((cut_short + 1))
		note=" (cut short, status $rc: $(grep -m1 -o 'oopsed in its int3 handler\|HARNESS FAILURE: .*' "$log" || echo 'see the log'))"
	fi
	echo "linux_guest_loop: segment $segments: $got of $n runs, $c clean, $d guest deaths$note; $log"
	grep '^FAIL: ' "$log" | grep -v 'no memcheck line\|no second memcheck line' | sed 's/^/  /'
	if [ "$got" -eq 0 ]; then
		stalled=$((stalled + 1))
		[ "$stalled" -lt 3 ] || { echo "linux_guest_loop: three segments in a row finished no run; stopping"; break; }
	else
		stalled=0
	fi
done
echo "linux_guest_loop: $mode on $series ($restore restores): $finished runs, $clean clean, $deaths guest deaths, $failures other failures;" \
	"$segments segments, $cut_short of them cut short (L1 died, a timeout, a harness failure)"
[ "$finished" -ge "$runs" ] || exit 125
[ "$failures" -eq 0 ]
