#!/bin/bash
# `make run-linux`: the Linux demo (scripts/linux-guest/demo.sh) with Debian's stock kernel and the test initramfs.
# Where /dev/kvm works it runs here; elsewhere inside the nested KVM of scripts/kvm-harness (a couple of minutes;
# timing under the emulator is indicative only).
# Usage: scripts/run-linux-demo.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-build}
work=$(mktemp -d /var/tmp/ckptd-linux-demo-XXXXXX)
trap 'rm -rf "$work"' EXIT

cmake --build "$build" --target guest_memcheck >/dev/null
echo "== the guest: Debian's kernel and an initramfs with busybox and memcheck (scripts/linux-guest)"
kernel=$("$here/linux-guest/kernel.sh" --series backports --vmlinux)
"$here/linux-guest/build-initramfs.sh" "$work/initrd.cpio" --memcheck "$build/tests/guest/guest_memcheck"
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	exec "$here/linux-guest/demo.sh" "$build/daemon/ckptd" "$build/cli/ckpt" "$kernel" "$work/initrd.cpio" "$work/demo"
fi
echo "== no /dev/kvm here: running the demo inside the nested KVM (QEMU TCG, Debian's kernel, kvm_amd)"
strip -o "$work/ckptd" "$build/daemon/ckptd"
strip -o "$work/ckpt" "$build/cli/ckpt"
"$here/kvm-harness/run-in-nested-kvm.sh" --kernel-series backports --smp 2 --mem 3G --timeout 900 \
	--extra-file "$work/ckptd:/demo/ckptd" --extra-file "$work/ckpt:/demo/ckpt" \
	--extra-file "$kernel:/demo/vmlinux" --extra-file "$work/initrd.cpio:/demo/initrd.cpio" \
	-- "$here/linux-guest/demo.sh" /demo/ckptd /demo/ckpt /demo/vmlinux /demo/initrd.cpio
