#!/bin/bash
# ckptd boots a Linux guest with a disk (an ext4 image made here) on the real KVM of the nested harness; the guest's
# init mounts it and runs diskcheck (tests/guest/diskcheck.cpp), and tests/kvm/linux_disk_in_l1.sh kills ckptd
# again and again, resumes it each time and restores live: after every restore the disk must agree with the
# guest's memory (diskcheck finds no file wrong) and the guest must run on.
#
# Usage: tests/kvm/linux_disk_test.sh BUILD_DIR [--series bookworm|backports] [--kills N]
# Exit status: the L1 script's, or the harness's 125.
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$here/../..
build=${1:?usage: linux_disk_test.sh BUILD_DIR [--series S] [--kills N]}
shift
series=backports kills=20
while [ $# -gt 0 ]; do
	case "$1" in
	--series) series=${2:?}; shift 2 ;;
	--kills) kills=${2:?}; shift 2 ;;
	*) echo "linux_disk_test: unknown argument $1" >&2; exit 2 ;;
	esac
done
[[ "$kills" =~ ^[0-9]+$ ]] || { echo "linux_disk_test: --kills needs a whole number, not '$kills'" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/linux-disk-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
kernel=$("$repo/scripts/linux-guest/kernel.sh" --series "$series" --vmlinux)
# The guest's modules: from the same kernel package as the vmlinux (kernel.sh keeps it in the harness's cache).
modules=$(dirname "$(dirname "$kernel")")/lib/modules/$(basename "$kernel" | sed 's/^vmlinux-//')
"$repo/scripts/linux-guest/build-initramfs.sh" "$work/initrd.cpio" --memcheck "$build/tests/guest/guest_memcheck" \
	--diskcheck "$build/tests/guest/guest_diskcheck" --modules "$modules" >/dev/null
[ -x /sbin/e2fsck.static ] || { echo "linux_disk_test: no /sbin/e2fsck.static (Debian package e2fsck-static; scripts/install-deps.sh installs it)" >&2; exit 2; }
strip -o "$work/ckptd" "$build/daemon/ckptd"
strip -o "$work/ckpt" "$build/cli/ckpt"
# The user's disk: a fresh ext4 file system (with its journal, as mkfs makes it by default).
truncate -s 64M "$work/disk.img"
mkfs.ext4 -q -F -L ckpt-test "$work/disk.img"

# About 10 s a kill under TCG; the harness's limit leaves room for a repeated attempt (linux_disk_in_l1.sh).
timeout=$((2400 + kills * 20))
"$repo/scripts/kvm-harness/run-in-nested-kvm.sh" --kernel-series "$series" --smp 2 --mem 3G --timeout "$timeout" \
	--extra-file "$work/ckptd:/harness/ckptd" --extra-file "$work/ckpt:/harness/ckpt" \
	--extra-file "$kernel:/harness/guest/vmlinux" --extra-file "$work/initrd.cpio:/harness/guest/initrd.cpio" \
	--extra-file "$work/disk.img:/harness/guest/disk.img" --env "DISK_KILLS=$kills" \
	--extra-file /sbin/e2fsck.static:/harness/bin/e2fsck \
	--extra-file "$here/l1_lib.sh:/harness/bin/l1_lib.sh" \
	-- "$here/linux_disk_in_l1.sh"
