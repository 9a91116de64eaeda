#!/bin/bash
# Self-test of scripts/kvm-harness/run-in-nested-kvm.sh: proves that a test binary really runs on a real /dev/kvm in
# the nested guest, that its exit status and output come back, and that harness failures are reported as 125.
#
# Usage: tests/kvm/harness_selftest.sh [--kernel-series bookworm|backports] [other harness options...]
# Builds tests/kvm/probe.c statically, then:
#   1. two runs at once (concurrency): probe exiting 0 and probe exiting 3, with quoted args, --env and
#      --extra-file; the harness must return 0 and 3 and pass the probe's stdout and stderr lines through, without
#      kernel log lines or the harness's exit marker, and leave no run directory behind;
#   2. --timeout 1: must return 125 and say "timeout";
#   3. an invalid kvm_amd parameter value: insmod fails, must return 125 and name kvm_amd.
# Last line: "harness_selftest: N passed, M failed"; exit status 0 iff M == 0.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
harness=$here/../../scripts/kvm-harness/run-in-nested-kvm.sh
harness_opts=("$@")
pass=0
fail=0

work=$(mktemp -d "${TMPDIR:-/tmp}/kvm-selftest.XXXXXX")
trap 'rm -rf "$work"' EXIT
export TMPDIR=$work/tmp # the harness's run directories land here, so leftovers can be counted
mkdir -p "$TMPDIR"

check() { # check NAME COMMAND...
	local name=$1
	shift
	if "$@"; then
		echo "PASS: $name"
		pass=$((pass + 1))
	else
		echo "FAIL: $name"
		fail=$((fail + 1))
	fi
}
has_line() { grep -qE -- "$2" "$1"; }
lacks_line() { ! grep -qE -- "$2" "$1"; }
show() { # prints a run's output, indented, for the ctest log
	echo "----- $1 (exit $2) -----"
	sed 's/^/  | /' "$3"
}
finish() {
	echo "harness_selftest: $pass passed, $fail failed"
	[ "$fail" = 0 ]
	exit
}

# The probe is built with the host's gcc and glibc (libc6-dev provides libc.a for -static).
if ! command -v gcc >/dev/null || [ ! -e /usr/lib/x86_64-linux-gnu/libc.a ]; then
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null
	fi
fi
check "probe builds statically" gcc -O2 -static -Wall -Wextra -Werror -o "$work/probe" "$here/probe.c"
[ -x "$work/probe" ] || finish

# 1. Two concurrent runs: the first run of a fresh machine provisions the kernel for both (cache lock).
echo "first line of the extra file" >"$work/extra.txt"
start=$(date +%s)
"$harness" "${harness_opts[@]}" -- "$work/probe" 0 >"$work/run0.out" 2>&1 &
pid0=$!
"$harness" "${harness_opts[@]}" --env PROBE_FILE=/etc/probe/extra.txt --extra-file "$work/extra.txt:/etc/probe/extra.txt" \
	-- "$work/probe" 3 "two words" "it's" '$HOME' >"$work/run3.out" 2>&1 &
pid3=$!
wait "$pid0"
rc0=$?
wait "$pid3"
rc3=$?
echo "two concurrent runs took $(($(date +%s) - start)) s"
show "probe 0" "$rc0" "$work/run0.out"
show "probe 3" "$rc3" "$work/run3.out"

check "exit status 0 comes back" [ "$rc0" = 0 ]
check "exit status 3 comes back" [ "$rc3" = 3 ]
for r in run0 run3; do
	check "$r: probe found KVM API 12, a dirty ring and manual protect" has_line "$work/$r.out" '^probe: ok kernel=[^ ]+ api=12 '
	check "$r: probe's stderr reaches the output" has_line "$work/$r.out" '^probe: this line went to stderr$'
	check "$r: no kernel log lines in the output" lacks_line "$work/$r.out" '^\[ *[0-9]+\.[0-9]+\]'
	check "$r: no harness marker in the output" lacks_line "$work/$r.out" '@@HARNESS'
done
check "arguments keep their quoting" has_line "$work/run3.out" '^probe: args \[two words\] \[it'"'"'s\] \[\$HOME\]$'
check "--env and --extra-file reach the guest" has_line "$work/run3.out" \
	'^probe: file /etc/probe/extra.txt: first line of the extra file$'
check "successful runs leave no run directory" [ -z "$(ls -A "$TMPDIR")" ]

# 2. Timeout: harness failure.
"$harness" "${harness_opts[@]}" --timeout 1 -- "$work/probe" 0 >"$work/timeout.out" 2>&1
rc=$?
show "--timeout 1" "$rc" "$work/timeout.out"
check "timeout gives 125" [ "$rc" = 125 ]
check "timeout is named as the reason" has_line "$work/timeout.out" 'HARNESS FAILURE: timeout'

# 3. Module load failure: harness failure, with the kernel's complaint in the console tail.
"$harness" "${harness_opts[@]}" --kvm-amd-params "npt=banana" -- "$work/probe" 0 >"$work/modfail.out" 2>&1
rc=$?
show "--kvm-amd-params npt=banana" "$rc" "$work/modfail.out"
check "module load failure gives 125" [ "$rc" = 125 ]
check "module load failure names kvm_amd" has_line "$work/modfail.out" 'HARNESS FAILURE: guest setup failed: insmod kvm_amd'
check "module load failure does not run the probe" lacks_line "$work/modfail.out" '^probe: '

finish
