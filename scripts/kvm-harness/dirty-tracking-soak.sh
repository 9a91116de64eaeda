#!/usr/bin/env bash
# Does an L2 Linux guest survive in the nested KVM while its VMM keeps dirty tracking on? Runs
# scripts/kvm-harness/dirty-tracking-soak-l1.sh in one L1: the same kernel, initramfs (memcheck, 192 MiB) and guest
# size under QEMU 7.2 with a migration that never ends (dirty ring, dirty bitmap), QEMU without one, and ckptd
# (docs/testing.md, "A Linux guest", records what it found). A long run: ARM_S seconds per arm plus L1's boot.
#
# Usage: scripts/kvm-harness/dirty-tracking-soak.sh [BUILD_DIR] [--arm-seconds N] [--arms "A B ..."] [--series S]
#   --arm-seconds N  seconds per arm (default 480)
#   --arms LIST      any of qemu-ring qemu-log qemu-idle ckptd-ring (default: all four)
#   --series S       L1 and guest kernel series (default backports, 6.12; bookworm is 6.1)
set -Eeuo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
die() { echo "dirty-tracking-soak: error: $*" >&2; exit 1; }
build=$root/build
if [[ $# -gt 0 && "$1" != --* ]]; then build=$1; shift; fi
arm_s=480 arms="qemu-ring qemu-log qemu-idle ckptd-ring" series=backports
while [[ $# -gt 0 ]]; do
	case "$1" in
	--arm-seconds) arm_s=${2:?}; shift 2 ;;
	--arms) arms=${2:?}; shift 2 ;;
	--series) series=${2:?}; shift 2 ;;
	*) die "unknown option $1 (see the header of scripts/kvm-harness/dirty-tracking-soak.sh)" ;;
	esac
done
[[ "$arm_s" =~ ^[1-9][0-9]*$ ]] || die "--arm-seconds must be a positive number, not '$arm_s'"
for a in $arms; do
	case "$a" in qemu-ring | qemu-log | qemu-idle | ckptd-ring) ;; *) die "unknown arm '$a'" ;; esac
done
work=$(mktemp -d "${TMPDIR:-/tmp}/dirty-tracking-soak.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$root/scripts/linux-guest/l1-bundle.sh" "$build" "$series" "$work"
b=$work/b

n_arms=$(wc -w <<<"$arms")
"$root/scripts/kvm-harness/run-in-nested-kvm.sh" --kernel-series "$series" --smp 2 --mem 3G \
	--timeout $((n_arms * (arm_s + 120) + 300)) \
	--extra-file "$b:/b" --extra-file "$work/ckptd:/harness/ckptd" --extra-file "$work/ckpt:/harness/ckpt" \
	--env "ARM_S=$arm_s" --env "ARMS=$arms" -- "$root/scripts/kvm-harness/dirty-tracking-soak-l1.sh"
