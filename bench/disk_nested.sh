#!/usr/bin/env bash
# What a disk costs an epoch: a Linux guest under ckptd in the nested KVM (scripts/kvm-harness), memcheck running
# (64 MiB), once without disk traffic and once with diskcheck writing and fsyncing files on its ext4 disk
# (tests/guest/diskcheck.cpp), the same guest otherwise. From ckptd's per-epoch debug lines: pause (harvest, copy,
# rearm, state; the disks are quiesced inside the pause step), dirty pages and disk blocks per epoch; from its
# status, bytes stored per epoch. TCG distorts all timing: the figures are indicative only.
#
# Usage: bench/disk_nested.sh [BUILD_DIR] [--seconds N] [--out FILE]
#   --seconds N  measured seconds per arm (default 60), after the guest is up
#   --out FILE   also write the markdown report there
# Needs a build (ckptd, ckpt, guest_memcheck, guest_diskcheck). Takes about 5 minutes here.
set -Eeuo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "disk_nested: error: $*" >&2; exit 1; }
build=$root/build
if [[ $# -gt 0 && "$1" != --* ]]; then build=$1; shift; fi
seconds=60 out=
while [[ $# -gt 0 ]]; do
	case "$1" in
	--seconds) seconds=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	*) die "unknown option $1 (see the header of bench/disk_nested.sh)" ;;
	esac
done
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || die "--seconds must be a positive number, not '$seconds'"
work=$(mktemp -d "${TMPDIR:-/tmp}/disk-nested.XXXXXX")
trap 'rm -rf "$work"' EXIT
kernel=$("$root/scripts/linux-guest/kernel.sh" --series backports --vmlinux)
modules=$(dirname "$(dirname "$kernel")")/lib/modules/$(basename "$kernel" | sed 's/^vmlinux-//')
"$root/scripts/linux-guest/build-initramfs.sh" "$work/initrd.cpio" --memcheck "$build/tests/guest/guest_memcheck" \
	--diskcheck "$build/tests/guest/guest_diskcheck" --modules "$modules" >/dev/null
strip -o "$work/ckptd" "$build/daemon/ckptd"
strip -o "$work/ckpt" "$build/cli/ckpt"
truncate -s 64M "$work/disk.img"
mkfs.ext4 -q -F "$work/disk.img"

log=$work/run.log
rc=0
"$root/scripts/kvm-harness/run-in-nested-kvm.sh" --kernel-series backports --smp 2 --mem 3G --timeout 1800 \
	--extra-file "$work/ckptd:/harness/ckptd" --extra-file "$work/ckpt:/harness/ckpt" \
	--extra-file "$kernel:/harness/guest/vmlinux" --extra-file "$work/initrd.cpio:/harness/guest/initrd.cpio" \
	--extra-file "$work/disk.img:/harness/guest/disk.img" --env "ARM_SECONDS=$seconds" \
	-- "$root/bench/disk_nested_l1.sh" 2>&1 | tee "$log" >&2 || rc=$?

value() { sed -n "s/^RESULT $1 //p" "$log" | tail -n 1; }
row() {
	local state
	state=$(value "$2 state")
	[ "$state" = running ] || state="$state: the guest stopped during the arm (the emulator), epochs before it only"
	echo "| $1 | $(value "$2 epochs") ($state) | $(value "$2 pause_p50") / $(value "$2 pause_p99") / $(value "$2 pause_max") |" \
		"$(value "$2 pages_mean") | $(value "$2 blocks_mean") ($(value "$2 blocks_max") max) |" \
		"$(value "$2 stored_per_epoch") |"
}
report() {
	echo "## Nested KVM: what a disk costs an epoch (indicative only)"
	echo
	echo "- When: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(nproc) CPUs, $(uname -r); L1: Debian's backports kernel"
	echo "  under QEMU TCG (-cpu max, 2 vCPUs); L2: Debian's stock kernel (vmlinux) + the test initramfs, 2 vCPUs,"
	echo "  256 MiB, memcheck on 64 MiB; one 64 MiB ext4 disk (virtio-blk). ckptd: ring tracking, 200 ms epochs,"
	echo "  $seconds s measured per arm after boot. Command: \`bench/disk_nested.sh --seconds $seconds\`."
	echo
	echo "| arm | epochs | pause ms p50 / p99 / max | dirty pages per epoch | disk blocks per epoch | stored bytes per epoch |"
	echo "|---|---|---|---|---|---|"
	row "no disk traffic (diskcheck off)" idle
	row "diskcheck: create, append, rename, fsync" busy
	echo
	echo "The pause includes quiescing the disk (requests under way complete) and copying the written blocks from the"
	echo "working image into the staging area; stored bytes are whole epoch files (memory and disk blocks together)."
	echo "Harness exit status: $rc."
}
report
[ -z "$out" ] || report >"$out"
exit "$rc"
