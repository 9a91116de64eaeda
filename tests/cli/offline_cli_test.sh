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
  if grep -qE -- "$2" "$1"; then echo "ok: $3"; else echo "FAIL: $3: no /$2/ in:"; cat "$1"; failures=$((failures + 1)); fi
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
# inspect's store figures count every byte of the epoch files (data, metadata, footers), and the ratio uses them.
expect_rc 0 "inspect --json" -- "$ckpt" inspect --store "$dir/s" --json
file_bytes=$(sed -nE 's/^ *"file_bytes": ([0-9]+),?$/\1/p' "$dir/out")
on_disk=$(cat "$dir"/s/*.epoch 2>/dev/null | wc -c)
[ "$on_disk" -gt 0 ] || on_disk=1 # no store: the comparison below fails, reported, rather than a division by zero
[ "$file_bytes" = "$on_disk" ] && echo "ok: inspect's file_bytes ($file_bytes) is the epoch files' size" || {
  echo "FAIL: inspect's file_bytes '$file_bytes', the epoch files hold $on_disk bytes"; failures=$((failures + 1)); }
raw=$(sed -nE 's/^ *"raw_bytes": ([0-9]+),?$/\1/p' "$dir/out")
expect_text "$dir/out" "\"compression_ratio\": \"($((raw / on_disk))|$((raw / on_disk + 1)))(\\.[0-9]+)?x\"" "the ratio is raw bytes per file byte (rounded)"
# ckptd's exit codes (docs/operations.md, "Exit codes"): every usage or config error is 2, named, and changes nothing.
expect_rc 2 "ckptd with an unknown option" -- "$ckptd" --bogus
expect_rc 2 "ckptd with a stray argument" -- "$ckptd" stray
expect_rc 2 "ckptd --config naming a directory" -- "$ckptd" --config "$dir"
expect_text "$dir/err" "config file $dir is a directory" "the directory is named"
expect_rc 2 "ckptd --config naming a missing file" -- "$ckptd" --config "$dir/none.conf"
expect_text "$dir/err" "$dir/none.conf" "the missing file is named"
expect_rc 2 "ckptd --vcpus 33 (the VM takes 32)" -- "$ckptd" --vcpus 33
expect_text "$dir/err" "--vcpus 33: 33 is outside 1..32" "the setting and its range are named"
expect_rc 2 "ckptd --memory-mib -8" -- "$ckptd" --memory-mib -8
# A file that is no kernel is named as such before the backend is looked at (here /dev/kvm may be missing).
echo "not a kernel" >"$dir/not-a-kernel"
expect_rc 2 "ckptd --kernel naming a file that is no kernel" -- \
  "$ckptd" --kernel "$dir/not-a-kernel" --store "$dir/kernel-store" --socket "$dir/kernel.sock"
expect_text "$dir/err" "$dir/not-a-kernel is neither a bzImage nor an x86-64 ELF vmlinux" "the file and the reason are named"
printf 'epoch-ms = 100  # inline comment\nvcpus = 40\n' >"$dir/bad.conf"
expect_rc 2 "ckptd with a bad value in its config file" -- "$ckptd" --config "$dir/bad.conf"
expect_text "$dir/err" "$dir/bad.conf:2: vcpus = 40: 40 is outside 1..32" "the file and line are named"
expect_rc 2 "ckptd on a store with epochs, without --resume" -- \
  "$ckptd" --store "$dir/s" --socket "$dir/ckptd2.sock" --backend software
expect_text "$dir/err" "set resume" "the message says to set resume"
# Resume with settings that differ from the store's VM (16 MiB, 2 vCPUs, hot-set, seed 1) is a config error naming
# the setting, both values and where the differing one came from, and leaves the store as it was.
snapshot_of() { (cd "$1" && find . -type f -name "*.epoch" | sort | xargs md5sum); }  # LOCK holds the last pid
before=$(snapshot_of "$dir/s")
resume=("$ckptd" --resume --store "$dir/s" --socket "$dir/resume.sock" --backend software)
expect_rc 2 "resume with another --vcpus" -- "${resume[@]}" --vcpus 3
expect_text "$dir/err" "vcpus is 2 in the store but 3 in --vcpus" "the vCPU difference is named with both values"
expect_text "$dir/err" "rebuilt from the store" "the message says why"
expect_rc 2 "resume with another --memory-mib" -- "${resume[@]}" --memory-mib 32
expect_text "$dir/err" "memory-mib is 16 in the store but 32 in --memory-mib" "the memory difference is named"
printf 'workload = sweep\nworkload-seed = 7  # not the store'"'"'s\n' >"$dir/other.conf"
expect_rc 2 "resume with another workload and seed in the config file" -- "${resume[@]}" --config "$dir/other.conf"
expect_text "$dir/err" "workload is hot-set in the store but sweep in $dir/other.conf:1; workload-seed is 1 in the store but 7 in $dir/other.conf:2" \
  "every workload difference is named with its file and line"
[ "$(snapshot_of "$dir/s")" = "$before" ] && echo "ok: the refused resumes left the store unchanged" || {
  echo "FAIL: a refused resume changed the store"; failures=$((failures + 1)); }
# Settings left unset take the store's values (the defaults are 256 MiB and hot-set seed 1; the store is 16 MiB).
cp -r "$dir/s" "$dir/s2"
"$ckptd" --resume --store "$dir/s2" --socket "$dir/s2.sock" --backend software >"$dir/s2.log" 2>&1 &
resumed=$!
for _ in $(seq 1 100); do "$ckpt" --socket "$dir/s2.sock" status --json >"$dir/s2.json" 2>/dev/null && break; sleep 0.1; done
expect_text "$dir/s2.json" '"memory_bytes": 16777216' "an unset memory-mib takes the store's 16 MiB on resume"
kill -TERM "$resumed"; wait "$resumed"
expect_eq_rc=$?
[ "$expect_eq_rc" -eq 0 ] && echo "ok: the resumed ckptd stops cleanly" || {
  echo "FAIL: resumed ckptd exit $expect_eq_rc"; cat "$dir/s2.log"; failures=$((failures + 1)); }

# A small memory needs no hot-pages setting: the default shrinks to fit (operations.md, "Configuration").
"$ckptd" --store "$dir/small" --socket "$dir/small.sock" --backend software --memory-mib 8 >"$dir/small.log" 2>&1 &
small=$!
for _ in $(seq 1 100); do [ -S "$dir/small.sock" ] && break; kill -0 "$small" 2>/dev/null || break; sleep 0.1; done
kill -TERM "$small" 2>/dev/null
wait "$small"
rc=$?
[ "$rc" -eq 0 ] && echo "ok: ckptd --memory-mib 8 runs with the default hot set" || {
  echo "FAIL: ckptd --memory-mib 8 exit $rc"; cat "$dir/small.log"; failures=$((failures + 1)); }

expect_rc 0 "list" -- "$ckpt" list --store "$dir/s"
expect_text "$dir/out" "^ +0  base" "list shows the base"
expect_rc 0 "list --json" -- "$ckpt" list --store "$dir/s" --json
expect_text "$dir/out" '"kind": "delta"' "JSON lists deltas"
expect_rc 0 "verify" -- "$ckpt" verify --store "$dir/s"
expect_rc 0 "restore newest" -- "$ckpt" restore --store "$dir/s" --to "$dir/img"
[ "$(stat -c %s "$dir/img")" -eq $((16 << 20)) ] && echo "ok: image is 16 MiB" || { echo "FAIL: image size"; failures=$((failures + 1)); }
# --to never writes into the store: pointed at the base, it would turn every epoch into garbage.
base_file=$(ls "$dir/s"/*.epoch | head -1)
base_sum=$(md5sum <"$base_file")
expect_rc 2 "restore --to the store's base file is refused" -- "$ckpt" restore --store "$dir/s" --to "$base_file"
expect_text "$dir/err" "is inside the store" "the refusal says why"
[ "$(md5sum <"$base_file")" = "$base_sum" ] && echo "ok: the base is untouched" || { echo "FAIL: the base changed"; failures=$((failures + 1)); }
expect_rc 2 "restore --to a file in the store directory is refused" -- "$ckpt" restore --store "$dir/s" --to "$dir/s/img"

expect_rc 4 "unknown epoch" -- "$ckpt" restore --store "$dir/s" --epoch 99999 --to "$dir/img2"
expect_text "$dir/err" "epoch 99999 is not in store" "unknown epoch is named"
expect_rc 4 "missing store" -- "$ckpt" list --store "$dir/nothing-here"
expect_rc 2 "usage error" -- "$ckpt" restore --store "$dir/s"
expect_rc 2 "no subcommand" -- "$ckpt"
expect_text "$dir/err" "a command is required: status, snapshot" "no subcommand lists the commands"
expect_rc 2 "an unknown command" -- "$ckpt" frobnicate
expect_text "$dir/err" "^ckpt: 'frobnicate' is not a ckpt command; the commands are status, snapshot, list, restore" \
  "an unknown command is named and the commands listed"

# Numbers: a negative, too large, or malformed value of any numeric option is a usage error naming the option (CLI11
# alone wraps -1 to 2^64-1, saturates past 2^64 and reads 010 as octal).
numeric_case() {  # numeric_case OPTION_NAME_IN_MESSAGE ckpt-args... (the first of them the command)
  local name=$1
  shift
  expect_rc 2 "ckpt $*" -- "$ckpt" "$@"
  expect_text "$dir/err" "^ckpt $1: $name: " "ckpt $* names $name after the command, on one line"
  [ "$(wc -l <"$dir/err")" -eq 1 ] || { echo "FAIL: ckpt $*: more than one line"; failures=$((failures + 1)); }
}
numeric_case --keep-last compact --keep-last -1
numeric_case --keep-last compact --keep-last 0 --store "$dir/s"
numeric_case --keep-last compact --keep-last 99999999999999999999 --store "$dir/s"
numeric_case --to-epoch compact --to-epoch -3
numeric_case epoch restore -- -1
numeric_case epoch restore 18446744073709551616
numeric_case --epoch restore --epoch -5 --store "$dir/s" --to "$dir/neg.img"
numeric_case --epoch inspect --store "$dir/s" --epoch -1
numeric_case --epoch verify --store "$dir/s" --epoch 1x
numeric_case --timeout shutdown --wait --timeout -1
numeric_case --timeout shutdown --wait --timeout 1e400
[ -e "$dir/neg.img" ] && { echo "FAIL: a refused restore wrote its image"; failures=$((failures + 1)); }
expect_rc 0 "a leading zero is decimal, not octal" -- "$ckpt" inspect --store "$dir/s" --epoch 005 --json
expect_text "$dir/out" '"epoch": 5,' "--epoch 005 is epoch 5"
# Offline compact of a path that holds no store: not found, and nothing is created there.
expect_rc 4 "offline compact of a missing store" -- "$ckpt" compact --store "$dir/nothing-here" --keep-last 3
[ -e "$dir/nothing-here" ] && { echo "FAIL: offline compact created $dir/nothing-here"; failures=$((failures + 1)); }

# Flip one byte inside the data of epoch 1.
f=$dir/s/0000000000000001.epoch
printf '\xff' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
expect_rc 5 "verify finds the flipped byte" -- "$ckpt" verify --store "$dir/s"
expect_text "$dir/err" "first bad epoch 1 .*0000000000000001.epoch offset [0-9]+" "verify names the epoch, file and offset"
expect_rc 5 "restore of the bad epoch refuses" -- "$ckpt" restore --store "$dir/s" --epoch 1 --to "$dir/img3"
expect_text "$dir/err" "corruption: .*0000000000000001.epoch offset" "restore names file and offset"

# A store whose newest epoch is damaged, with a stray epoch-named file above it: resume refuses and names the way
# out; ckpt repair moves both aside (never deletes them) and ckptd resumes from the newest intact epoch.
"$ckptd" --store "$dir/r" --socket "$dir/r.sock" --backend software --memory-mib 16 --epoch-ms 50 >"$dir/r.log" 2>&1 &
daemon=$!
for _ in $(seq 1 100); do [ -S "$dir/r.sock" ] && break; sleep 0.1; done
sleep 0.5
kill -TERM "$daemon"; wait "$daemon"
newest=$(ls "$dir/r" | grep '\.epoch$' | tail -1)
printf '\xff' | dd of="$dir/r/$newest" bs=1 seek=70 conv=notrunc status=none
echo junk >"$dir/r/9999999999999999.epoch"
resume=(--store "$dir/r" --socket "$dir/r.sock" --backend software --memory-mib 16 --epoch-ms 50 --resume --verify-final)
expect_rc 1 "resume from a damaged newest epoch refuses" -- "$ckptd" "${resume[@]}"
expect_text "$dir/err" "ckpt repair --store $dir/r" "the refusal names ckpt repair"
expect_rc 0 "repair --dry-run" -- "$ckpt" repair --store "$dir/r" --dry-run
expect_text "$dir/out" "would move epoch 9999999999999999" "dry run names the stray file"
[ -e "$dir/r/9999999999999999.epoch" ] && echo "ok: the dry run moved nothing" || { echo "FAIL: dry run moved"; failures=$((failures + 1)); }
expect_rc 0 "repair" -- "$ckpt" repair --store "$dir/r"
expect_text "$dir/out" "moved epoch $((10#${newest%.epoch})):" "repair moved the damaged newest epoch"
expect_text "$dir/out" "ckptd --resume continues from epoch" "repair says where ckptd resumes"
moved=$(ls -d "$dir/r"/damaged-*)
[ -e "$moved/$newest" ] && [ -e "$moved/9999999999999999.epoch" ] && echo "ok: both files kept in $moved" ||
  { echo "FAIL: the moved files are not in $moved"; failures=$((failures + 1)); }
expect_rc 0 "verify after repair" -- "$ckpt" verify --store "$dir/r"
"$ckptd" "${resume[@]}" >"$dir/r2.log" 2>&1 &
daemon=$!
for _ in $(seq 1 100); do [ -S "$dir/r.sock" ] && break; sleep 0.1; done
sleep 0.5
kill -TERM "$daemon"; wait "$daemon"
rc=$?
[ "$rc" -eq 0 ] && echo "ok: ckptd resumed after the repair" || { echo "FAIL: resume after repair exit $rc"; cat "$dir/r2.log"; failures=$((failures + 1)); }
expect_text "$dir/r2.log" "bit-exact" "the resumed VM's final epoch verifies"
expect_rc 0 "repair of an intact store changes nothing" -- "$ckpt" repair --store "$dir/r"
expect_text "$dir/out" "nothing to repair" "repair says so"
expect_rc 4 "repair of a missing store" -- "$ckpt" repair --store "$dir/nothing-here"

echo "offline CLI: $failures failures"
[ "$failures" -eq 0 ]
