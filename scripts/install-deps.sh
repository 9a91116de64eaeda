#!/bin/bash
# Installs every missing build and test dependency from Debian's packages. Idempotent: a machine that already has
# everything runs no apt command at all.
set -euo pipefail
packages=(
  build-essential cmake pkg-config
  liburing-dev libzstd-dev libxxhash-dev libcli11-dev nlohmann-json3-dev libsystemd-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  zstd
  e2fsprogs e2fsck-static  # the disk test (tests/kvm/linux_disk_test.sh): mkfs.ext4, and a static e2fsck for L1
  acpica-tools  # iasl: the ACPI table tests disassemble and reassemble the guest's tables (tests/vmm/x86_acpi_test.cpp)
  systemd  # systemd-analyze and systemd-sysusers for the unit's test (tests/packaging/verify_unit.sh)
  clang libclang-rt-14-dev llvm-14  # fuzz targets (scripts/fuzz.sh): libFuzzer + sanitizer runtimes, llvm-symbolizer
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
