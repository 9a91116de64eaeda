#!/usr/bin/env bash
# ckptd against QEMU with a Linux guest, side by side in one nested KVM (scripts/kvm-harness: L1 under QEMU TCG,
# Debian's kernel, kvm_amd): boot to init (QEMU -M pc and -M microvm, ckptd), the guest's stop to save it (QEMU's
# migrate-to-file downtime, ckptd's epoch pause), and a restore loop (the same saved state restored again and again;
# each restore must reach a new memcheck round). TCG distorts all timing: the figures are indicative only; the
# restore loop's failure counts are the point of part 3 (docs/testing.md, "A Linux guest").
#
# Usage: bench/nested_compare.sh [BUILD_DIR] [--restores N] [--series S] [--out FILE]
#   --restores N  restores per VMM in the loop (default 10)
#   --series S    L1 and guest kernel series (default backports, 6.12; bookworm is 6.1)
#   --out FILE    also write the markdown report there
# Needs a build (ckptd, ckpt, guest_memcheck). Takes about 10-20 minutes here.
set -Eeuo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "nested_compare: error: $*" >&2; exit 1; }
build=$root/build
if [[ $# -gt 0 && "$1" != --* ]]; then build=$1; shift; fi
restores=10 series=backports out=
while [[ $# -gt 0 ]]; do
	case "$1" in
	--restores) restores=${2:?}; shift 2 ;;
	--series) series=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	*) die "unknown option $1 (see the header of bench/nested_compare.sh)" ;;
	esac
done
[[ "$restores" =~ ^[0-9]+$ ]] || die "--restores must be a number, not '$restores'"
work=$(mktemp -d "${TMPDIR:-/tmp}/nested-compare.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$root/scripts/linux-guest/l1-bundle.sh" "$build" "$series" "$work"
b=$work/b

log=$work/run.log
rc=0
"$root/scripts/kvm-harness/run-in-nested-kvm.sh" --kernel-series "$series" --smp 2 --mem 3G --timeout 3000 \
	--extra-file "$b:/b" --extra-file "$work/ckptd:/harness/ckptd" --extra-file "$work/ckpt:/harness/ckpt" --env "RESTORES=$restores" -- "$root/bench/nested_compare_l1.sh" 2>&1 | tee "$log" ||
	rc=$?

value() { sed -n "s/^RESULT $1 //p" "$log" | tail -n 1; }
report() {
	echo "## Nested KVM: ckptd and QEMU side by side (indicative only)"
	echo
	echo "- When: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(nproc) CPUs, $(uname -r); L1: Debian's $series kernel under"
	echo "  QEMU TCG (-cpu max, 2 vCPUs); L2: Debian's stock kernel (vmlinux) + the test initramfs, 2 vCPUs, 384 MiB."
	echo "- QEMU in L1: $(qemu-system-x86_64 --version | head -n 1), -accel kvm -cpu host; ckptd: ring tracking,"
	echo "  1 s epochs. Command: \`bench/nested_compare.sh --restores $restores --series $series\`."
	echo
	echo "| measure | ckptd | QEMU |"
	echo "|---|---|---|"
	echo "| boot to init, s (command line \`memcheck=off\`) | $(value 'boot_to_init_s ckptd') |" \
		"pc $(value 'boot_to_init_s qemu-pc'), microvm $(value 'boot_to_init_s qemu-microvm') |"
	echo "| guest stopped to save it, ms (memcheck 192 MiB) | epoch pause p50 $(value ckptd_pause_ms_p50)," \
		"p99 $(value ckptd_pause_ms_p99), max $(value ckptd_pause_ms_max) ($(value ckptd_pause_ms_count) epochs) |" \
		"migrate to file: downtime $(value qemu_migrate_downtime_ms), total $(value qemu_migrate_total_ms)" \
		"($(value qemu_migrate_status)) |"
	echo "| restore loop (the same state, $restores times; each must reach a new memcheck round) |" \
		"$(value 'restores ckptd') | $(value 'restores qemu') |"
	echo
	echo "ckptd's epoch pause copies every dirty page with the guest stopped (pre-copy is issue 17); QEMU's downtime"
	echo "is the last stop-and-copy of a live migration. Harness exit status: $rc."
}
report | tee "$work/report.md"
[[ -z "$out" ]] || cp "$work/report.md" "$out"
exit "$rc"
