#!/bin/bash
# Builds the Linux test guest's initramfs: a newc cpio holding Debian's static busybox (with its applet links),
# scripts/linux-guest/init as /init and memcheck (tests/guest) as /bin/memcheck. See README.md beside this script.
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
Usage: build-initramfs.sh OUT.cpio [--memcheck BINARY] [--gzip]

Writes the test guest's initramfs to OUT.cpio: busybox, /init, /bin/memcheck.
  --memcheck BINARY  the statically linked memcheck (default: build/tests/guest/guest_memcheck; build it with
                     cmake --build build --target guest_memcheck)
  --gzip             gzip the archive (smaller; slower to unpack under an emulator)
Installs busybox-static and cpio with apt when they are missing (needs root then).
EOF
}

die() {
	echo "$PROG: error: $*" >&2
	exit 1
}

out="" memcheck=$REPO/build/tests/guest/guest_memcheck gzip=0
while [ $# -gt 0 ]; do
	case "$1" in
	--memcheck) [ $# -ge 2 ] || die "--memcheck needs a path"; memcheck=$2; shift 2 ;;
	--gzip) gzip=1; shift ;;
	-h | --help) usage; exit 0 ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) [ -z "$out" ] || die "one output file only (see --help)"; out=$1; shift ;;
	esac
done
[ -n "$out" ] || { usage >&2; exit 2; }
[ -f "$memcheck" ] || die "memcheck binary $memcheck not found: build it (cmake --build build --target guest_memcheck) or pass --memcheck"

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
