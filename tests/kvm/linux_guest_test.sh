#!/bin/bash
# ckptd boots a Linux guest (Debian's stock kernel, the test initramfs of scripts/linux-guest) on the real KVM of the
# nested harness and checkpoints it; tests/kvm/linux_guest_in_l1.sh runs there and checks that every restore (kill -9
# + --resume, live restore, restore after the guest crashed) is invisible to the guest.
#
# Usage: tests/kvm/linux_guest_test.sh BUILD_DIR [--series bookworm|backports] [--smp N] [--no-bzimage]
#                                      [--full-mode MODE|none] [--timeout S] MODE...
#   MODE: ring, clear-log or dirty-log (KVM tracking modes). --no-bzimage leaves out the bzImage boot check (a run
#   that another run already did it for). The --full-mode MODE (default: the first) gets every check; the others
#   leave out the console attach and the guest's crash, unless EVERY_MODE_FULL=1 (tests/kvm/linux_guest_in_l1.sh).
#   --timeout: the harness's limit for L1's boot and the whole run (default 2400 s).
#   Exit status: the L1 script's, or the harness's 125.
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$here/../..
build=${1:?usage: linux_guest_test.sh BUILD_DIR [--series S] [--smp N] [--no-bzimage] [--full-mode M] [--timeout S] MODE...}
shift
series=backports smp=2 skip_bzimage=0 full_mode="" timeout=2400
while [ $# -gt 0 ]; do
	case "$1" in
	--series) series=${2:?}; shift 2 ;;
	--smp) smp=${2:?}; shift 2 ;;
	--no-bzimage) skip_bzimage=1; shift ;;
	--full-mode) full_mode=${2:?}; shift 2 ;;
	--timeout) timeout=${2:?}; shift 2 ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { echo "linux_guest_test: no tracking mode given" >&2; exit 2; }

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
# harness runs the test again once if the emulator breaks L1's kernel (its README, "Limits").
"$repo/scripts/kvm-harness/run-in-nested-kvm.sh" --kernel-series "$series" --smp "$smp" --mem 3G --timeout "$timeout" \
	--extra-file "$work/ckptd:/harness/ckptd" --extra-file "$work/ckpt:/harness/ckpt" \
	--extra-file /usr/bin/script:/harness/bin/script \
	--extra-file "$kernel:/harness/guest/vmlinux" --extra-file "$bzimage:/harness/guest/bzImage" \
	--extra-file "$work/initrd.cpio:/harness/guest/initrd.cpio" --env "SKIP_BZIMAGE=$skip_bzimage" \
	--env "EVERY_MODE_FULL=${EVERY_MODE_FULL:-0}" \
	--env "FULL_MODE=$full_mode" --env "MAX_ATTEMPTS=${MAX_ATTEMPTS:-}" \
	--extra-file "$here/l1_lib.sh:/harness/bin/l1_lib.sh" \
	-- "$here/linux_guest_in_l1.sh" "$@"
