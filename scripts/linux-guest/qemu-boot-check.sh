#!/bin/bash
# Boots the Linux test guest with QEMU on the real KVM inside the nested-KVM harness, independently of ckptd: proves
# the kernel, the initramfs, init, memcheck and the console shell, and measures the time to init and to memcheck's rounds (TCG:
# indicative only). See README.md beside this script.
#
# Usage: qemu-boot-check.sh [--series bookworm|backports] [--bzimage] [--mib N] [--rounds N] [--smp N] [--mem SIZE]
#                           [--keep]
# Needs the build's static memcheck (cmake --build build --target guest_memcheck; or MEMCHECK=path).
# Exit status: the L1 check's (0: init ran, every round bad=0, memcheck exited 0), or the harness's 125.
set -Eeuo pipefail

readonly PROG=qemu-boot-check
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly REPO=$HERE/../..

die() {
	echo "$PROG: error: $*" >&2
	exit 1
}

series=bookworm kernel_opt=(--vmlinux) mib=192 rounds=10 smp=1 mem=384M keep=()
while [ $# -gt 0 ]; do
	case "$1" in
	--series) series=${2:?}; shift 2 ;;
	--bzimage) kernel_opt=(); shift ;;
	--mib) mib=${2:?}; shift 2 ;;
	--rounds) rounds=${2:?}; shift 2 ;;
	--smp) smp=${2:?}; shift 2 ;;
	--mem) mem=${2:?}; shift 2 ;;
	--keep) keep=(--keep); shift ;;
	-h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done

kernel=$("$HERE/kernel.sh" --series "$series" "${kernel_opt[@]}")
work=$(mktemp -d "${TMPDIR:-/tmp}/linux-guest-boot.XXXXXX")
trap 'rm -rf "$work"' EXIT
b=$work/bundle
"$HERE/qemu-bundle.sh" "$b"
"$HERE/build-initramfs.sh" "$b/guest.cpio" --memcheck "${MEMCHECK:-$REPO/build/tests/guest/guest_memcheck}"
cp "$kernel" "$b/"

# L1 needs the guest's memory plus QEMU's and the bundle (unpacked into L1's RAM): 1 GiB covers a 384 MiB guest.
# Not exec'ed: the EXIT trap must remove the bundle (about 60 MB) afterwards.
rc=0
"$REPO/scripts/kvm-harness/run-in-nested-kvm.sh" --kernel-series "$series" --smp 2 --mem 1G --timeout 400 \
	"${keep[@]}" --extra-file "$b:/b" \
	--env "L2_SMP=$smp" --env "L2_MEM=$mem" --env "L2_TIMEOUT=300" --env L2_SHELL_CHECK=1 \
	--env "L2_APPEND=memcheck.mib=$mib memcheck.rounds=$rounds memcheck.interval_ms=0 memcheck.then=reboot" \
	-- "$HERE/l1-qemu-boot.sh" || rc=$?
exit "$rc"
