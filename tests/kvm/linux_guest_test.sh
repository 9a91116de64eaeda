#!/bin/bash
# ckptd boots a Linux guest (Debian's stock kernel, the test initramfs of scripts/linux-guest) on the real KVM of the
# nested harness and checkpoints it; tests/kvm/linux_guest_in_l1.sh runs there and checks that every restore (kill -9
# + --resume, live restore, restore after the guest crashed) is invisible to the guest.
#
# Usage: tests/kvm/linux_guest_test.sh BUILD_DIR [--series bookworm|backports] [--smp N] [--no-bzimage]
#                                      [--full-mode MODE|none] [--timeout S] [--one-l1] MODE...
#   MODE: ring, clear-log or dirty-log (KVM tracking modes). --no-bzimage leaves out the bzImage boot check (a run
#   that another run already did it for; otherwise the first mode's L1 does it). The --full-mode MODE (default: the
#   first) gets every check; the others leave out the console attach and the guest's crash, unless
#   EVERY_MODE_FULL=1 (tests/kvm/linux_guest_in_l1.sh).
#   Each MODE runs in an L1 of its own, so that the harness's repeat of a run whose L1 the emulator killed
#   (KVM_HARNESS_EMULATOR_RETRIES) repeats one mode, not all; --one-l1 runs them all in one L1 (the loop does).
#   --timeout: the harness's limit for one L1's boot and its run (default 2400 s).
#   RESTORE=eager makes ckptd restore eagerly (its `restore` setting; default lazy).
#   Exit status: 0 if every L1 run passed; else the first failed run's (the L1 script's), or the harness's 125 if
#   that was all that failed.
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$here/../..
build=${1:?usage: linux_guest_test.sh BUILD_DIR [--series S] [--smp N] [--no-bzimage] [--full-mode M] [--timeout S] [--one-l1] MODE...}
shift
series=backports smp=2 skip_bzimage=0 full_mode="" timeout=2400 one_l1=0
while [ $# -gt 0 ]; do
	case "$1" in
	--series) series=${2:?}; shift 2 ;;
	--smp) smp=${2:?}; shift 2 ;;
	--no-bzimage) skip_bzimage=1; shift ;;
	--full-mode) full_mode=${2:?}; shift 2 ;;
	--timeout) timeout=${2:?}; shift 2 ;;
	--one-l1) one_l1=1; shift ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { echo "linux_guest_test: no tracking mode given" >&2; exit 2; }
[ -n "$full_mode" ] || full_mode=$1

work=$(mktemp -d "${TMPDIR:-/tmp}/linux-guest-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
kernel=$("$repo/scripts/linux-guest/kernel.sh" --series "$series" --vmlinux)
bzimage=$("$repo/scripts/linux-guest/kernel.sh" --series "$series")
"$repo/scripts/linux-guest/build-initramfs.sh" "$work/initrd.cpio" --memcheck "$build/tests/guest/guest_memcheck" \
	>/dev/null
# Stripped: L1 keeps its initramfs in RAM, and the debug info of ckptd and ckpt is 90 MB of it.
strip -o "$work/ckptd" "$build/daemon/ckptd"
strip -o "$work/ckpt" "$build/cli/ckpt"

# L1 holds the kernel (about 60 MB) and the initramfs in its RAM, the guest's 384 MiB, and the stores in tmpfs. The
# harness runs the test again if the emulator breaks L1's kernel (its README, "Limits").
# run_in_l1 SKIP_BZIMAGE MODE...: one L1 that runs these modes.
run_in_l1() {
	local skip=$1
	shift
	"$repo/scripts/kvm-harness/run-in-nested-kvm.sh" --kernel-series "$series" --smp "$smp" --mem 3G \
		--timeout "$timeout" --extra-file "$work/ckptd:/harness/ckptd" --extra-file "$work/ckpt:/harness/ckpt" \
		--extra-file /usr/bin/script:/harness/bin/script \
		--extra-file "$kernel:/harness/guest/vmlinux" --extra-file "$bzimage:/harness/guest/bzImage" \
		--extra-file "$work/initrd.cpio:/harness/guest/initrd.cpio" --env "SKIP_BZIMAGE=$skip" \
		--env "EVERY_MODE_FULL=${EVERY_MODE_FULL:-0}" \
		--env "FULL_MODE=$full_mode" --env "MAX_ATTEMPTS=${MAX_ATTEMPTS:-}" --env "RESTORE=${RESTORE:-lazy}" \
		--extra-file "$here/l1_lib.sh:/harness/bin/l1_lib.sh" \
		-- "$here/linux_guest_in_l1.sh" "$@"
}

if [ "$one_l1" = 1 ]; then
	run_in_l1 "$skip_bzimage" "$@"
	exit
fi
status=0
for mode in "$@"; do
	rc=0
	run_in_l1 "$skip_bzimage" "$mode" || rc=$?
	skip_bzimage=1
	echo "linux_guest_test: $mode: exit status $rc"
	if [ "$rc" != 0 ] && { [ "$status" = 0 ] || [ "$status" = 125 ]; }; then status=$rc; fi
done
exit "$status"
