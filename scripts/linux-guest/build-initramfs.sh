#!/bin/bash
# Builds the Linux test guest's initramfs: a newc cpio holding Debian's static busybox (with its applet links),
# scripts/linux-guest/init as /init, memcheck and diskcheck (tests/guest) in /bin, and, with --modules, the kernel
# modules a disk needs (virtio-mmio, virtio-blk, ext4). See README.md beside this script.
#
# Reproducible: fixed file order, owners, modes and timestamps (SOURCE_DATE_EPOCH, default 0), so the same inputs
# give the same bytes. Uncompressed by default: under an emulator the kernel unpacks it faster than it could
# decompress anything (Debian's kernels also accept gzip, xz and zstd: CONFIG_RD_*).
set -Eeuo pipefail

readonly PROG=build-initramfs
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly REPO=$HERE/../..
readonly PACKAGES=(busybox-static cpio)

usage() {
	cat <<'EOF'
Usage: build-initramfs.sh OUT.cpio [--memcheck BINARY] [--diskcheck BINARY] [--modules DIR] [--gzip]

Writes the test guest's initramfs to OUT.cpio: busybox, /init, /bin/memcheck, /bin/diskcheck.
  --memcheck BINARY  the statically linked memcheck (default: build/tests/guest/guest_memcheck; build it with
                     cmake --build build --target guest_memcheck)
  --diskcheck BINARY the statically linked diskcheck (default: build/tests/guest/guest_diskcheck; left out, with
                     a note, when it is not built)
  --modules DIR      the guest kernel's module tree (lib/modules/VERSION): adds the modules a disk with ext4
                     needs, decompressed, to /lib/modules/VERSION with a load order init follows (the stock kernel
                     builds them as modules; they must be the booted kernel's own)
  --gzip             gzip the archive (smaller; slower to unpack under an emulator)
Installs busybox-static and cpio with apt when they are missing (needs root then).
EOF
}

die() {
	echo "$PROG: error: $*" >&2
	exit 1
}

out="" memcheck=$REPO/build/tests/guest/guest_memcheck diskcheck="" modules="" gzip=0
while [ $# -gt 0 ]; do
	case "$1" in
	--memcheck) [ $# -ge 2 ] || die "--memcheck needs a path"; memcheck=$2; shift 2 ;;
	--diskcheck) [ $# -ge 2 ] || die "--diskcheck needs a path"; diskcheck=$2; shift 2 ;;
	--modules) [ $# -ge 2 ] || die "--modules needs a directory"; modules=$2; shift 2 ;;
	--gzip) gzip=1; shift ;;
	-h | --help) usage; exit 0 ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) [ -z "$out" ] || die "one output file only (see --help)"; out=$1; shift ;;
	esac
done
[ -n "$out" ] || { usage >&2; exit 2; }
[ -f "$memcheck" ] || die "memcheck binary $memcheck not found: build it (cmake --build build --target guest_memcheck) or pass --memcheck"
if [ -z "$diskcheck" ]; then
	diskcheck=$REPO/build/tests/guest/guest_diskcheck
	[ -f "$diskcheck" ] || { echo "$PROG: note: no $diskcheck (cmake --build build --target guest_diskcheck): the guest gets no diskcheck" >&2; diskcheck=""; }
fi
[ -z "$diskcheck" ] || [ -f "$diskcheck" ] || die "diskcheck binary $diskcheck not found"
[ -z "$modules" ] || [ -f "$modules/modules.dep" ] || die "$modules has no modules.dep: not a kernel's module tree (lib/modules/VERSION)"

is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
missing=()
for p in "${PACKAGES[@]}"; do is_installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || die "missing packages: ${missing[*]}; install them or run as root"
	echo "$PROG: installing ${missing[*]}" >&2
	if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2; then
		die "apt-get install ${missing[*]} failed"
	fi
fi

# The guest has no C library: both binaries must be static.
is_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'program interpreter'; }
is_static /bin/busybox || die "/bin/busybox is not the static one (package busybox-static)"
is_static "$memcheck" || die "$memcheck is dynamically linked; the guest has no C library (build target guest_memcheck)"
[ -z "$diskcheck" ] || is_static "$diskcheck" || die "$diskcheck is dynamically linked; the guest has no C library"

umask 022
stage=$(mktemp -d "${TMPDIR:-/tmp}/linux-guest-initramfs.XXXXXX")
trap 'rm -rf "$stage" "${out}.tmp.$$"' EXIT
root=$stage/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root}
cp /bin/busybox "$root/bin/busybox"
# Applet links made here, not by `busybox --install` at boot: one less step under an emulator.
for applet in $("$root/bin/busybox" --list-full); do
	case "$applet" in bin/busybox | linuxrc) continue ;; esac
	mkdir -p "$root/$(dirname "$applet")"
	ln -sf /bin/busybox "$root/$applet"
done
install -m 0755 "$HERE/init" "$root/init"
install -m 0755 "$memcheck" "$root/bin/memcheck"
[ -z "$diskcheck" ] || install -m 0755 "$diskcheck" "$root/bin/diskcheck"

# The modules a disk needs, each after what it depends on (modules.dep), decompressed: busybox's insmod hands the
# file to the kernel as it is. crc32c_generic is what ext4's metadata checksums ask the crypto API for (a module in
# Debian's kernels, and the guest has no modprobe to fetch it on demand).
if [ -n "$modules" ]; then
	kver=$(basename "$(cd "$modules" && pwd)")
	mkdir -p "$root/lib/modules/$kver"
	order=()
	add_module() { # NAME: its dependencies first, then itself, once
		local path dep
		path=$(awk -F: -v n="$1" '{ p = $1; sub(/^.*\//, "", p); sub(/\.ko(\.[a-z]+)?$/, "", p); gsub(/-/, "_", p) } p == n { print $0; exit }' "$modules/modules.dep")
		[ -n "$path" ] || die "module $1 is not in $modules/modules.dep"
		for dep in ${path#*:}; do
			dep=$(basename "$dep"); dep=${dep%%.ko*}; add_module "${dep//-/_}"
		done
		local name=$1 file=${path%%:*}
		local done_name
		for done_name in "${order[@]}"; do [ "$done_name" = "$name" ] && return 0; done
		case "$file" in
		*.ko) cp "$modules/$file" "$root/lib/modules/$kver/$name.ko" ;;
		*.ko.xz) xz -dc "$modules/$file" >"$root/lib/modules/$kver/$name.ko" ;;
		*.ko.zst) zstd -qdc "$modules/$file" >"$root/lib/modules/$kver/$name.ko" ;;
		*.ko.gz) gzip -dc "$modules/$file" >"$root/lib/modules/$kver/$name.ko" ;;
		*) die "unknown module file $file" ;;
		esac
		order+=("$name")
	}
	for m in crc32c_generic virtio_mmio virtio_blk ext4; do add_module "$m"; done
	printf '%s\n' "${order[@]}" >"$root/lib/modules/$kver/load-order"
fi
find "$root" -exec touch -h -d "@${SOURCE_DATE_EPOCH:-0}" {} +

(cd "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc --quiet --owner 0:0 --reproducible) >"$stage/initramfs.cpio"
if [ "$gzip" = 1 ]; then
	gzip -n -9 <"$stage/initramfs.cpio" >"${out}.tmp.$$"
else
	cp "$stage/initramfs.cpio" "${out}.tmp.$$"
fi
mv -f "${out}.tmp.$$" "$out"
echo "$PROG: wrote $out ($(stat -c %s "$out") bytes)" >&2
