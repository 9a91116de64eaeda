#!/bin/bash
# Gathers what a side-by-side run of ckptd and QEMU in the nested harness's L1 needs, for bench/nested_compare.sh
# and scripts/kvm-harness/dirty-tracking-soak.sh: DIR/b (QEMU from qemu-bundle.sh, the series' vmlinux, the test
# initramfs as guest.cpio; copied to /b in L1) and DIR/ckptd, DIR/ckpt, stripped (L1 keeps its initramfs in RAM).
# Usage: l1-bundle.sh BUILD_DIR SERIES DIR
set -Eeuo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: l1-bundle.sh BUILD_DIR SERIES DIR}
series=${2:?usage: l1-bundle.sh BUILD_DIR SERIES DIR}
dir=${3:?usage: l1-bundle.sh BUILD_DIR SERIES DIR}
for f in daemon/ckptd cli/ckpt tests/guest/guest_memcheck; do
	[[ -x "$build/$f" ]] || { echo "l1-bundle: error: $build/$f is missing: build first (make build)" >&2; exit 1; }
done
"$here/qemu-bundle.sh" "$dir/b"
cp "$("$here/kernel.sh" --series "$series" --vmlinux)" "$dir/b/vmlinux"
"$here/build-initramfs.sh" "$dir/b/guest.cpio" --memcheck "$build/tests/guest/guest_memcheck" >/dev/null
strip -o "$dir/ckptd" "$build/daemon/ckptd"
strip -o "$dir/ckpt" "$build/cli/ckpt"
