#!/bin/bash
# End-to-end: ckptd writes a small store; ckpt reads it; then the error paths and their exit codes
# (docs: README "Exit codes"): not found 4, corruption 5 with the file and offset named, usage 2.
# Usage: offline_cli_test.sh BUILD_DIR
set -uo pipefail
build=$1
ckptd=$build/daemon/ckptd
ckpt=$build/cli/ckpt
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failures=0

expect_rc() {  # expect_rc WANT DESCRIPTION -- command...
  local want=$1 what=$2
  shift 3
  "$@" >"$dir/out" 2>"$dir/err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL: $what: exit $rc, want $want"; cat "$dir/out" "$dir/err"; failures=$((failures + 1))
  else
    echo "ok: $what (exit $rc)"
  fi
}
expect_text() {  # expect_text FILE PATTERN DESCRIPTION
  if grep -qE "$2" "$1"; then echo "ok: $3"; else echo "FAIL: $3: no /$2/ in:"; cat "$1"; failures=$((failures + 1)); fi
}

# A small store: ckptd runs for about a second, then SIGTERM takes a final epoch, which verify-final rebuilds into a
# fresh VM and compares with the guest.
"$ckptd" --store "$dir/s" --socket "$dir/ckptd.sock" --backend software --memory-mib 16 --epoch-ms 50 \
  --verify-final >"$dir/ckptd.log" 2>&1 &
daemon=$!
for _ in $(seq 1 100); do [ -S "$dir/ckptd.sock" ] && break; sleep 0.1; done
sleep 1
kill -TERM "$daemon"
wait "$daemon"
rc=$?
[ "$rc" -eq 0 ] && echo "ok: ckptd wrote a store and stopped on SIGTERM" || {
  echo "FAIL: ckptd exit $rc"; cat "$dir/ckptd.log"; failures=$((failures + 1)); }
expect_text "$dir/ckptd.log" "bit-exact" "ckptd's verify-final passed"
expect_rc 0 "list" -- "$ckpt" list --store "$dir/s"
expect_text "$dir/out" "^ +0  base" "list shows the base"
expect_rc 0 "list --json" -- "$ckpt" list --store "$dir/s" --json
expect_text "$dir/out" '"kind": "delta"' "JSON lists deltas"
expect_rc 0 "verify" -- "$ckpt" verify --store "$dir/s"
expect_rc 0 "restore newest" -- "$ckpt" restore --store "$dir/s" --to "$dir/img"
[ "$(stat -c %s "$dir/img")" -eq $((16 << 20)) ] && echo "ok: image is 16 MiB" || { echo "FAIL: image size"; failures=$((failures + 1)); }

expect_rc 4 "unknown epoch" -- "$ckpt" restore --store "$dir/s" --epoch 99999 --to "$dir/img2"
expect_text "$dir/err" "epoch 99999 is not in store" "unknown epoch is named"
expect_rc 4 "missing store" -- "$ckpt" list --store "$dir/nothing-here"
expect_rc 2 "usage error" -- "$ckpt" restore --store "$dir/s"
expect_rc 2 "no subcommand" -- "$ckpt"

# Flip one byte inside the data of epoch 1.
f=$dir/s/0000000000000001.epoch
printf '\xff' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
expect_rc 5 "verify finds the flipped byte" -- "$ckpt" verify --store "$dir/s"
expect_text "$dir/err" "first bad epoch 1 .*0000000000000001.epoch offset [0-9]+" "verify names the epoch, file and offset"
expect_rc 5 "restore of the bad epoch refuses" -- "$ckpt" restore --store "$dir/s" --epoch 1 --to "$dir/img3"
expect_text "$dir/err" "corruption: .*0000000000000001.epoch offset" "restore names file and offset"

echo "offline CLI: $failures failures"
[ "$failures" -eq 0 ]
