#!/bin/bash
# Prints the path of Debian's stock kernel for the Linux test guest: the one the nested-KVM harness provisions into
# its cache (scripts/kvm-harness/run-in-nested-kvm.sh --print-kernel-path; downloaded on first use). With
# --vmlinux, prints the uncompressed ELF vmlinux instead, extracted from that bzImage once and cached beside it:
# booting it skips the kernel's self-decompression, about 9 s under an emulator. See README.md beside this script.
set -Eeuo pipefail

readonly PROG=linux-guest-kernel
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HARNESS=$HERE/../kvm-harness/run-in-nested-kvm.sh

usage() {
	cat <<'EOF'
Usage: kernel.sh [--series bookworm|backports] [--vmlinux] [--refresh]

Prints the path of Debian's stock kernel (bzImage), provisioned into the nested-KVM harness's cache
(KVM_HARNESS_CACHE, default ~/.cache/ckptd-kvm-harness) if it is not there yet.
  --series S   bookworm (Debian 12, 6.1; default) or backports (bookworm-backports, 6.12)
  --vmlinux    print the uncompressed ELF vmlinux instead (extracted once, cached beside the bzImage)
  --refresh    resolve and download the newest kernel of the series again
EOF
}

die() {
	echo "$PROG: error: $*" >&2
	exit 1
}

series=bookworm vmlinux=0 refresh=()
while [ $# -gt 0 ]; do
	case "$1" in
	--series) [ $# -ge 2 ] || die "--series needs bookworm or backports"; series=$2; shift 2 ;;
	--vmlinux) vmlinux=1; shift ;;
	--refresh) refresh=(--refresh); shift ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done
case "$series" in bookworm | backports) ;; *) die "--series must be bookworm or backports, not '$series'" ;; esac

vmlinuz=$("$HARNESS" --kernel-series "$series" "${refresh[@]}" --print-kernel-path) ||
	die "the harness could not provision the $series kernel (its reason is above)"
[ -f "$vmlinuz" ] || die "the harness named $vmlinuz, which does not exist"
if [ "$vmlinux" = 0 ]; then
	echo "$vmlinuz"
	exit 0
fi

out=$(dirname "$vmlinuz")/vmlinux-${vmlinuz##*/vmlinuz-}
if [ -f "$out" ]; then
	echo "$out"
	exit 0
fi

# The bzImage's setup header (boot protocol 2.08+) locates the compressed payload exactly: it starts
# payload_offset (u32 at 0x248) bytes into the protected-mode part, which follows (setup_sects + 1) * 512 bytes
# (setup_sects: u8 at 0x1f1), and is payload_length (u32 at 0x24c) long. Its last 4 bytes are the kernel build's
# appended uncompressed size, which no decompressor expects: they are cut off and checked against the output.
u8() { od -An -tu1 -j "$1" -N1 "$vmlinuz" | tr -d ' '; }
u32() { od -An -tu4 -j "$1" -N4 "$vmlinuz" | tr -d ' '; }
[ "$(od -An -c -j $((0x202)) -N4 "$vmlinuz" | tr -d ' ')" = HdrS ] || die "$vmlinuz is not a bzImage (no HdrS)"
setup_sects=$(u8 $((0x1f1)))
[ "$setup_sects" != 0 ] || setup_sects=4
start=$(((setup_sects + 1) * 512 + $(u32 $((0x248)))))
length=$(u32 $((0x24c)))
[ "$length" -gt 4 ] || die "$vmlinuz has no payload (boot protocol before 2.08?)"
size=$(od -An -tu4 -j $((start + length - 4)) -N4 "$vmlinuz" | tr -d ' ')

# Debian compresses bookworm's kernel (6.1) with xz and bookworm-backports' (6.12) with zstd; gzip for others.
magic=$(od -An -tx1 -j "$start" -N6 "$vmlinuz" | tr -d ' \n')
case "$magic" in
fd377a585a00) decompress=(xz -dc) ;;
28b52ffd*) decompress=(zstd -qdc) ;;
1f8b*) decompress=(gzip -dc) ;;
*) die "$vmlinuz: payload compression with magic $magic is not handled (xz, zstd, gzip are)" ;;
esac
command -v "${decompress[0]}" >/dev/null || die "${decompress[0]} is missing (apt-get install xz-utils zstd gzip)"

# Extracted under a temporary name and renamed: the cache is shared, and a reader never sees a partial file.
tmp=$(mktemp "$out.tmp.XXXXXX")
trap 'rm -f "$tmp"' EXIT
dd if="$vmlinuz" bs=64K iflag=skip_bytes,count_bytes skip="$start" count=$((length - 4)) status=none |
	"${decompress[@]}" >"$tmp" || die "${decompress[*]} failed on the payload of $vmlinuz"
[ "$(stat -c %s "$tmp")" = "$size" ] || die "$vmlinuz: extracted $(stat -c %s "$tmp") bytes, the image says $size"
# An x86-64 ELF: magic, ELFCLASS64, e_machine 0x3e.
if [ "$(od -An -tx1 -N5 "$tmp" | tr -d ' ')" != 7f454c4602 ] || [ "$(od -An -tx1 -j 18 -N2 "$tmp" | tr -d ' ')" != 3e00 ]; then
	die "the payload of $vmlinuz is not an x86-64 ELF"
fi
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
echo "$PROG: extracted $out ($size bytes, ${decompress[0]})" >&2
echo "$out"
