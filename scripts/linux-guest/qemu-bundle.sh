#!/bin/bash
# Copies this host's QEMU into DIR for the nested harness's L1, which has only busybox: DIR/bin/qemu-system-x86_64,
# DIR/lib/ (every library ldd names, the loader among them) and DIR/share/ (firmware: SeaBIOS and the option ROMs
# that load a bzImage or a PVH ELF vmlinux for -M pc, kvmvapic, qboot for -M microvm). In L1 run it as
#   DIR/lib/ld-linux-x86-64.so.2 --library-path DIR/lib DIR/bin/qemu-system-x86_64 -L DIR/share ...
# Usage: qemu-bundle.sh DIR
set -Eeuo pipefail
die() {
	echo "qemu-bundle: error: $*" >&2
	exit 1
}
b=${1:?usage: qemu-bundle.sh DIR}
qemu=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 is missing (scripts/install-deps.sh)"
mkdir -p "$b"/{bin,lib,share}
cp "$qemu" "$b/bin/"
for lib in $(ldd "$qemu" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' | sort -u); do
	cp -L "$lib" "$b/lib/"
done
[ -f "$b/lib/ld-linux-x86-64.so.2" ] || die "ldd named no ld-linux-x86-64.so.2 for $qemu"
for f in linuxboot_dma.bin linuxboot.bin pvh.bin kvmvapic.bin bios-microvm.bin; do cp -L "/usr/share/qemu/$f" "$b/share/"; done
cp -L /usr/share/seabios/bios-256k.bin "$b/share/"
