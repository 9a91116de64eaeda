#!/bin/bash
# Checks packaging/systemd/ckptd.service with `systemd-analyze verify` (and, given the third argument, the sysusers.d
# file with `systemd-sysusers --dry-run`), offline: no running systemd is needed.
#   verify_unit.sh CKPTD_BINARY UNIT_FILE [SYSUSERS_CONF]
# verify insists that ExecStart's program exists, so the unit is checked as a copy whose ExecStart runs the built
# binary. Any line of output about ckptd.service fails the test, because verify exits 0 on most unit problems
# (an unknown or misspelt key, a value it cannot parse) and only prints them. Lines about other units are ignored:
# verify also loads the host's units this one depends on, and their problems are not ours.
# Exit 77 (ctest SKIP_RETURN_CODE) only when systemd-analyze is not installed; scripts/install-deps.sh installs it.
set -uo pipefail

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "SKIP: systemd-analyze not installed (Debian package systemd; scripts/install-deps.sh)"
  exit 77
fi
if [ $# -lt 2 ]; then
  echo "usage: $0 CKPTD_BINARY UNIT_FILE [SYSUSERS_CONF]" >&2
  exit 2
fi
binary=$1
unit=$2
sysusers=${3:-}
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$binary" ] || fail "$binary is not an executable file (build ckptd first)"
[ -r "$unit" ] || fail "cannot read $unit"
[ -z "$sysusers" ] || [ -r "$sysusers" ] || fail "cannot read $sysusers"
# Absolute paths: ExecStart needs one, and systemd-sysusers --root resolves a relative file name inside the root.
binary=$(realpath -- "$binary") && unit=$(realpath -- "$unit") || fail "realpath"
[ -z "$sysusers" ] || sysusers=$(realpath -- "$sysusers") || fail "realpath $sysusers"

tmp=$(mktemp -d /tmp/ckptd-unit-XXXXXX) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT

# The unit's name must stay ckptd.service. In a unit file '%' starts a specifier, so a literal one is doubled; the
# program is quoted in case the build path holds a space.
quoted=${binary//%/%%}
rewritten=0
while IFS= read -r line || [ -n "$line" ]; do
  if [[ $line == "ExecStart=/usr/bin/ckptd "* ]]; then
    line="ExecStart=\"$quoted\" ${line#ExecStart=/usr/bin/ckptd }"
    rewritten=1
  fi
  printf '%s\n' "$line"
done <"$unit" >"$tmp/ckptd.service"
[ "$rewritten" -eq 1 ] || fail "$unit has no line 'ExecStart=/usr/bin/ckptd ...' to point at $binary"

# --man=no: Documentation= has no man: page to look up, and `man` is often absent in containers.
# --recursive-errors=no: the exit status covers this unit only, not the host's units it pulls in.
# SYSTEMD_LOG_LEVEL=info: a level inherited from the caller (e.g. err) would hide the warnings this test is about.
verify() {
  SYSTEMD_LOG_LEVEL=info SYSTEMD_LOG_COLOR=0 SYSTEMD_LOG_TARGET=console \
    systemd-analyze verify --man=no --recursive-errors=no "$1" 2>&1
}

# First make sure the filter still sees problems: a copy with an unknown key must be reported. Without this, a
# systemd whose messages stopped naming the unit would turn this test into one that always passes.
mkdir "$tmp/canary"
{ cat "$tmp/ckptd.service"; echo "CkptdVerifyCanary=1"; } >"$tmp/canary/ckptd.service"
canary=$(verify "$tmp/canary/ckptd.service")
grep -F 'ckptd.service' <<<"$canary" | grep -q 'CkptdVerifyCanary' ||
  fail "systemd-analyze verify did not report an unknown key in a copy of the unit; its output was:"$'\n'"$canary"

output=$(verify "$tmp/ckptd.service")
status=$?
echo "systemd-analyze verify ($(systemd-analyze --version | head -n1)) on $unit, ExecStart=$binary:"
if [ -n "$output" ]; then printf '%s\n' "$output" | sed 's/^/  | /'; else echo "  (no output)"; fi
ours=$(grep -F 'ckptd.service' <<<"$output" || true)
[ "$status" -eq 0 ] || fail "systemd-analyze verify exited $status"
[ -z "$ours" ] || fail "systemd-analyze verify reported problems with the unit:"$'\n'"$ours"

if [ -n "$sysusers" ]; then
  command -v systemd-sysusers >/dev/null 2>&1 || fail "systemd-sysusers missing although systemd-analyze is there"
  mkdir "$tmp/root"
  # --root keeps it away from the host's /etc; --dry-run writes nothing even there.
  users=$(SYSTEMD_LOG_LEVEL=info SYSTEMD_LOG_COLOR=0 systemd-sysusers --root="$tmp/root" --dry-run "$sysusers" 2>&1)
  status=$?
  echo "systemd-sysusers --dry-run on $sysusers:"
  printf '%s\n' "$users" | sed 's/^/  | /'
  [ "$status" -eq 0 ] || fail "systemd-sysusers --dry-run $sysusers exited $status"
  grep -q "group 'ckpt'" <<<"$users" || fail "$sysusers does not create group ckpt"
fi
# Exposure as `systemd-analyze security` rates it (0 best, 10 worst); issue 7 requires at most 2.5.
security=$(SYSTEMD_LOG_COLOR=0 systemd-analyze security --offline=true --no-pager "$tmp/ckptd.service" 2>&1)
exposure=$(sed -n 's/.*Overall exposure level for ckptd.service: \([0-9.]*\).*/\1/p' <<<"$security")
[ -n "$exposure" ] || fail "systemd-analyze security gave no exposure level:"$'\n'"$security"
echo "systemd-analyze security --offline: exposure $exposure (at most 2.5 required)"
awk -v e="$exposure" 'BEGIN { exit !(e <= 2.5) }' || fail "exposure $exposure is above 2.5"
echo "PASS: $unit verifies clean, exposure $exposure${sysusers:+; $sysusers creates group ckpt}"
