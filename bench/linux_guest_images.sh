#!/usr/bin/env bash
# Captures a sequence of memory images of the Linux test guest, for store_bench --images: Debian's stock kernel with
# the test initramfs (scripts/linux-guest) booted under QEMU on this host (TCG: no /dev/kvm needed), memcheck
# keeping a self-verifying pattern in part of its memory. The first image is taken once memcheck has filled its
# memory (round 1), the others after each later round; between two images the guest ran one memcheck round, so the
# pages that differ are a real epoch's dirty set. Images are raw guest-physical memory, page for page (pmemsave).
#
# Usage: bench/linux_guest_images.sh OUT_DIR [--images N] [--memory-mib N] [--memcheck-mib N] [--series S]
#   --images N        images to capture (default 11: a base and 10 deltas)
#   --memory-mib N    guest memory (default 384, as in the nested Linux test)
#   --memcheck-mib N  memory memcheck checks (default 128; 0: none, the guest idles after boot)
#   --series S        kernel series for scripts/linux-guest/kernel.sh (default backports, 6.12)
# Needs a build's static memcheck (cmake --build build --target guest_memcheck; or MEMCHECK=path). Takes about
# 1-2 minutes here; the images take N x memory of disk.
set -Eeuo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "linux_guest_images: error: $*" >&2; exit 1; }

out=${1:-}
[[ -n "$out" && "$out" != --* ]] || die "usage: bench/linux_guest_images.sh OUT_DIR [options] (see its header)"
shift
images=11 memory_mib=384 memcheck_mib=128 series=backports
while [[ $# -gt 0 ]]; do
	case "$1" in
	--images) images=${2:?}; shift 2 ;;
	--memory-mib) memory_mib=${2:?}; shift 2 ;;
	--memcheck-mib) memcheck_mib=${2:?}; shift 2 ;;
	--series) series=${2:?}; shift 2 ;;
	*) die "unknown option $1 (see the header of bench/linux_guest_images.sh)" ;;
	esac
done
[[ "$images" =~ ^[1-9][0-9]*$ ]] || die "--images must be a positive number, not '$images'"
[[ "$memory_mib" =~ ^[1-9][0-9]*$ ]] || die "--memory-mib must be a positive number, not '$memory_mib'"
[[ "$memcheck_mib" =~ ^[0-9]+$ ]] || die "--memcheck-mib must be a number, not '$memcheck_mib'"
((memcheck_mib + 96 <= memory_mib)) || die "--memcheck-mib $memcheck_mib leaves the kernel too little of $memory_mib MiB"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (scripts/install-deps.sh)"
memcheck=${MEMCHECK:-$root/build/tests/guest/guest_memcheck}
[[ -x "$memcheck" ]] || die "no memcheck at $memcheck: cmake --build build --target guest_memcheck"

mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/linux-guest-images.XXXXXX")
qemu_pid=
cleanup() {
	[[ -z "$qemu_pid" ]] || kill "$qemu_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

kernel=$("$root/scripts/linux-guest/kernel.sh" --series "$series" --vmlinux)
"$root/scripts/linux-guest/build-initramfs.sh" "$work/guest.cpio" --memcheck "$memcheck" >/dev/null
if ((memcheck_mib > 0)); then
	# A round every 3 s at most: an image per round, and TCG needs the time to write the pattern.
	append="memcheck.mib=$memcheck_mib memcheck.interval_ms=3000"
else
	append="memcheck=off"
fi
mkfifo "$work/monitor.in" "$work/monitor.out"
qemu-system-x86_64 -accel tcg -cpu max -M pc -smp 2 -m "${memory_mib}M" -nodefaults -no-user-config -display none \
	-no-reboot -kernel "$kernel" -initrd "$work/guest.cpio" -append "console=ttyS0 quiet panic=-1 $append" \
	-serial "file:$work/console.log" -monitor "pipe:$work/monitor" >"$work/qemu.log" 2>&1 &
qemu_pid=$!
exec 7>"$work/monitor.in"
cat "$work/monitor.out" >/dev/null &

# Waits until the console has more than $1 lines matching $2 (up to 600 s).
wait_for() {
	local t=0 n
	while n=$(grep -c -- "$2" "$work/console.log" 2>/dev/null) || true; ((${n:-0} <= $1)); do
		kill -0 "$qemu_pid" 2>/dev/null || die "QEMU exited: $(cat "$work/qemu.log") $(tail -n 5 "$work/console.log")"
		((t++ < 6000)) || die "the guest printed no '$2' line in 600 s: $(tail -n 5 "$work/console.log")"
		sleep 0.1
	done
}
# Saves guest memory while the vCPUs are stopped; `info status` answers only after pmemsave has finished.
capture() {
	local file=$1 bytes=$((memory_mib << 20))
	rm -f "$file"
	echo "stop" >&7
	echo "pmemsave 0 $bytes \"$file\"" >&7
	echo "cont" >&7
	local t=0
	while [[ ! -f "$file" || $(stat -c %s "$file") -lt $bytes ]]; do
		((t++ < 600)) || die "pmemsave wrote no complete $file in 60 s"
		sleep 0.1
	done
}

wait_for 0 'CKPT-GUEST: init'
for ((i = 0; i < images; i++)); do
	if ((memcheck_mib > 0)); then wait_for "$i" 'MEMCHECK round='; else sleep 3; fi
	name=$(printf '%s/mem-%03d.img' "$out" "$i")
	capture "$name"
	echo "linux_guest_images: $name ($(grep 'MEMCHECK round=' "$work/console.log" | tail -n 1 | cut -d' ' -f2-3))"
done
grep -q 'MEMCHECK round=.* bad=[1-9]' "$work/console.log" && die "memcheck saw a bad page under QEMU: $(cat "$work/console.log")"
echo "quit" >&7
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=
