#!/bin/bash
# End-to-end: the real ckptd (software backend) driven by the live ckpt commands over its control socket: status,
# snapshot, list (live against offline), pause/resume, live restore, compact, shutdown; then the error paths and
# their exit codes (docs/cli.md, "Exit codes"): no daemon 3, unknown epoch 4, corruption 5, permission denied 6.
# Usage: live_cli_test.sh BUILD_DIR. Exits 77 (skipped) where the kernel lacks what the software backend needs.
set -uo pipefail
build=$1
ckptd=$build/daemon/ckptd
ckpt=$build/cli/ckpt
dir=$(mktemp -d)
sock=$dir/ckptd.sock
store=$dir/store
daemon_pid=""
failures=0

cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$daemon_pid" 2>/dev/null
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

fail() {  # fail DESCRIPTION EXPECTED GOT [FILE...]
  echo "FAIL: $1"
  echo "  expected: $2"
  echo "  got:      $3"
  shift 3
  for f in "$@"; do sed 's/^/  | /' "$f"; done
  failures=$((failures + 1))
}
expect_rc() {  # expect_rc WANT DESCRIPTION -- command...   (stdout in $dir/out, stderr in $dir/err)
  local want=$1 what=$2
  shift 3
  "$@" >"$dir/out" 2>"$dir/err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then fail "$what" "exit $want" "exit $rc" "$dir/out" "$dir/err"; else echo "ok: $what (exit $rc)"; fi
}
expect_text() {  # expect_text FILE PATTERN DESCRIPTION
  if grep -qE -- "$2" "$1"; then echo "ok: $3"; else fail "$3" "a line matching /$2/" "no such line in:" "$1"; fi
}
expect_eq() {  # expect_eq GOT WANT DESCRIPTION
  if [ "$1" = "$2" ]; then echo "ok: $3"; else fail "$3" "$2" "$1"; fi
}

# "EPOCH PARENT TAG" per epoch of a `ckpt list --json` output (one key per line, keys sorted; parent "null" for a
# base). No jq: the test needs nothing beyond the build's own dependencies.
epoch_lines() {
  awk '/"epoch":/ {gsub(/[ ",]/, ""); split($0, a, ":"); e = a[2]}
       /"parent":/ {gsub(/[ ",]/, ""); split($0, a, ":"); p = a[2]}
       /"tag":/ {sub(/^ *"tag": "/, ""); sub(/",?$/, ""); print e, p, $0}' "$1"
}
# The JSON objects of a `ckpt list --json` output whose epoch is <= MAX, each flattened to one line.
objects_upto() {  # objects_upto FILE MAX
  awk -v max="$2" '/^  \{/ {obj = ""; next}
       /^  \}/ {if (e <= max) print obj; next}
       {obj = obj $0}
       /"epoch":/ {v = $0; gsub(/[ ",]/, "", v); split(v, a, ":"); e = a[2] + 0}' "$1"
}
json_number() {  # json_number FILE KEY: the first "KEY": NUMBER of a pretty-printed JSON file
  grep -oE "\"$2\": [0-9]+" "$1" | head -1 | grep -oE '[0-9]+$'
}

start_daemon() {  # start_daemon [EXTRA ARGS...]: starts ckptd and waits until `ckpt status` answers
  "$ckptd" --store "$store" --socket "$sock" --backend software --memory-mib 64 --vcpus 2 --workload random-writer \
    --epoch-ms 50 "$@" >>"$dir/ckptd.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 300); do
    "$ckpt" --socket "$sock" status >/dev/null 2>&1 && { echo "ok: ckptd answers on $sock"; return 0; }
    if ! kill -0 "$daemon_pid" 2>/dev/null; then
      wait "$daemon_pid"
      echo "ckptd exited ($?) before its socket answered:"; sed 's/^/  | /' "$dir/ckptd.log"
      # The software backend needs userfaultfd write-protect and PAGEMAP_SCAN (Linux 6.7+).
      grep -q "unsupported" "$dir/ckptd.log" && { echo "SKIP: no software backend on this kernel"; exit 77; }
      exit 1
    fi
    sleep 0.1
  done
  echo "FAIL: ckptd did not answer on $sock within 30 s"; sed 's/^/  | /' "$dir/ckptd.log"
  exit 1
}

C=("$ckpt" --socket "$sock")

# --- Usage errors need no daemon.
expect_rc 2 "live restore without an epoch is a usage error" -- "${C[@]}" restore
expect_text "$dir/err" "which epoch" "the usage error says what is missing"
expect_rc 2 "restore --store without --to is a usage error" -- "${C[@]}" restore 3 --store "$store"

start_daemon

# --- status, three ways.
expect_rc 0 "status" -- "${C[@]}" status
for field in state vm store uptime epochs "last epoch" pause "dirty pages" bytes "owed pages" writer errors \
             "last error"; do
  expect_text "$dir/out" "^$field +[^ ]" "status shows $field"
done
expect_text "$dir/out" "^state +running" "status says running"
expect_text "$dir/out" "^vm +builtin guest, software backend, .* 64.0 MiB, 2 vCPUs" \
  "status names the guest, backend, memory and vCPUs"
expect_text "$dir/out" "^bytes +.* raw, .* written to the store \(ratio ([0-9.]+x|-)\)" \
  "status shows raw and stored bytes and their ratio"
expect_rc 0 "status --json" -- "${C[@]}" status --json
for key in state vm backend tracking memory_bytes vcpus store uptime_seconds epochs_committed epochs_failed \
           last_committed_epoch pause_ms p50 p99 max dirty_pages_total dirty_pages_per_second bytes_raw_total \
           bytes_stored_total owed_pages writer backlog_epochs lag_ms errors_total last_error; do
  grep -q "\"$key\":" "$dir/out" || fail "status --json has $key" "a \"$key\" field" "none in $dir/out" "$dir/out"
done
echo "ok: status --json fields checked"
expect_rc 0 "status --brief" -- "${C[@]}" status --brief
expect_eq "$(wc -l <"$dir/out")" 1 "status --brief prints one line"
expect_text "$dir/out" \
  '^epoch [0-9]+ \| [0-9,]+ committed \| pause p99 [0-9.]+ ms \| [0-9,]+ dirty pages/s \| [0-9.]+ [KMG]?i?B written \(([0-9.]+x|-)\) \| running$' \
  "status --brief has epoch, pause, dirty rate, bytes written and state"
expect_rc 0 "--socket after the subcommand" -- "$ckpt" status --brief --socket "$sock"
expect_rc 0 "the socket from CKPT_SOCKET" -- env CKPT_SOCKET="$sock" "$ckpt" status --brief

# --- idle connections (as many as the daemon serves at once, silent or halfway through a line) do not lock ckpt out.
python3 - "$sock" <<'PY' &
import socket, sys, time
peers = []
for i in range(16):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    if i % 2:
        s.send(b'{"v":1,"id":1,"cmd":"sta')
    peers.append(s)
time.sleep(5)
PY
hogs=$!
sleep 0.5
t0=$(date +%s%N)
expect_rc 0 "status with 16 idle connections open" -- "${C[@]}" status --brief
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 2000 ] && echo "ok: served in $ms ms" || fail "status is served promptly beside idle connections" "< 2000 ms" "$ms ms"
kill "$hogs" 2>/dev/null; wait "$hogs" 2>/dev/null

# --- snapshot, and list live against offline.
expect_rc 0 "snapshot --tag t1" -- "${C[@]}" snapshot --tag t1
expect_text "$dir/out" "^epoch [0-9]+ committed: [0-9,]+ dirty pages, pause [0-9.]+ ms, .* stored, tag t1$" \
  "snapshot prints the epoch, dirty pages and pause"
snap=$(sed -nE 's/^epoch ([0-9]+) committed.*/\1/p' "$dir/out")
[ -n "$snap" ] || { echo "FAIL: no epoch number from snapshot; giving up"; exit 1; }
expect_rc 0 "snapshot --json" -- "${C[@]}" snapshot --json
for key in epoch dirty_pages pause_ms stored_bytes file_bytes; do
  expect_text "$dir/out" "\"$key\": " "snapshot --json has $key"
done
# file_bytes is what reached the store: the whole epoch file (its blocks, metadata and footer).
json_epoch=$(json_number "$dir/out" epoch)
expect_eq "$(json_number "$dir/out" file_bytes)" "$(stat -c %s "$store/$(printf '%016d' "$json_epoch").epoch")" \
  "snapshot's file_bytes is its epoch file's size"

expect_rc 0 "list (live)" -- "${C[@]}" list
cp "$dir/out" "$dir/live.txt"
expect_text "$dir/live.txt" "^ +$snap  delta .* t1$" "live list shows epoch $snap tagged t1"
expect_rc 0 "list --json (live)" -- "${C[@]}" list --json
cp "$dir/out" "$dir/live.json"
expect_rc 0 "list --store --json (offline)" -- "$ckpt" list --store "$store" --json
cp "$dir/out" "$dir/offline.json"
expect_eq "$(epoch_lines "$dir/offline.json" | awk -v e="$snap" '$1 == e {print $3}')" t1 \
  "offline list --json shows epoch $snap tagged t1"
# Epochs keep arriving between the two calls: compare everything up to the snapshot.
expect_eq "$(objects_upto "$dir/live.json" "$snap" | md5sum)" "$(objects_upto "$dir/offline.json" "$snap" | md5sum)" \
  "live and offline list --json agree on epochs 0..$snap"
expect_eq "$(objects_upto "$dir/live.json" "$snap" | wc -l)" "$((snap + 1))" "list --json holds epochs 0..$snap"

# --- a tag holding a newline, terminal escapes (ESC, CSI as U+009B), a backslash and a right-to-left override is
# shown escaped by every human output, and round-trips unchanged through --json.
evil=$'ok\nfake line\e[31mred\xc2\x9b2J\\back\xe2\x80\xaeevil\x07'
expect_rc 0 "snapshot with a hostile tag" -- "${C[@]}" snapshot --tag "$evil"
evil_epoch=$(sed -nE 's/^epoch ([0-9]+) committed.*/\1/p' "$dir/out")
expect_eq "$(wc -l <"$dir/out")" 1 "snapshot prints the hostile tag on one line"
want='ok\nfake line\x1b[31mred\u009b2J\\back\u202eevil\x07'
for where in live offline; do
  if [ $where = live ]; then expect_rc 0 "list (live) with a hostile tag" -- "${C[@]}" list
  else expect_rc 0 "list (offline) with a hostile tag" -- "$ckpt" list --store "$store"; fi
  row=$(awk -v e="$evil_epoch" '$1 == e' "$dir/out")
  expect_eq "${row##*  }" "$want" "$where list shows the tag escaped"
  grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$dir/out" && fail "$where list prints no control characters" "none" "some"
  if [ $where = live ]; then expect_rc 0 "list --json (live) with a hostile tag" -- "${C[@]}" list --json
  else expect_rc 0 "list --json (offline) with a hostile tag" -- "$ckpt" list --store "$store" --json; fi
  got=$(python3 -c 'import json, sys
e = int(sys.argv[2])
print(next(x["tag"] for x in json.load(open(sys.argv[1])) if x["epoch"] == e).encode("unicode_escape").decode())' \
        "$dir/out" "$evil_epoch")
  expect_eq "$got" "$(printf '%s' "$evil" | python3 -c 'import sys; print(sys.stdin.read().encode("unicode_escape").decode())')" \
    "$where list --json is valid JSON holding the tag unchanged"
done
expect_rc 0 "list --store (offline table)" -- "$ckpt" list --store "$store"
expect_eq "$(awk -v e="$snap" 'NR > 1 && $1 <= e' "$dir/out" | md5sum)" \
  "$(awk -v e="$snap" 'NR > 1 && $1 <= e' "$dir/live.txt" | md5sum)" "live and offline tables agree up to $snap"

# --- pause / resume.
expect_rc 0 "pause" -- "${C[@]}" pause
sleep 1  # an epoch captured before the pause may still be committing
"${C[@]}" status --json >"$dir/s1"
sleep 0.5
"${C[@]}" status --json >"$dir/s2"
expect_text "$dir/s2" '"state": "epochs-paused"' "status says epochs-paused"
expect_eq "$(json_number "$dir/s2" last_committed_epoch)" "$(json_number "$dir/s1" last_committed_epoch)" \
  "no periodic epoch while paused"
expect_rc 0 "resume" -- "${C[@]}" resume
for _ in $(seq 100); do
  "${C[@]}" status --json >"$dir/s3"
  [ "$(json_number "$dir/s3" last_committed_epoch)" -gt "$(json_number "$dir/s2" last_committed_epoch)" ] && break
  sleep 0.1
done
expect_text "$dir/s3" '"state": "running"' "status says running after resume"
[ "$(json_number "$dir/s3" last_committed_epoch)" -gt "$(json_number "$dir/s2" last_committed_epoch)" ] \
  && echo "ok: epochs advance after resume" \
  || fail "epochs advance after resume" "last_committed_epoch > $(json_number "$dir/s2" last_committed_epoch)" \
       "$(json_number "$dir/s3" last_committed_epoch) after 10 s"

# --- live restore.
expect_rc 0 "restore 2 (live)" -- "${C[@]}" restore 2
expect_eq "$(wc -l <"$dir/out")" 1 "live restore prints one line"
expect_text "$dir/out" "^restored the VM to epoch 2 in [0-9.]+ s; its previous state is saved as epoch [0-9]+$" \
  "live restore names the restored and the saved epoch"
saved=$(sed -nE 's/.*saved as epoch ([0-9]+)$/\1/p' "$dir/out")
expect_rc 0 "status after the restore" -- "${C[@]}" status
expect_text "$dir/out" "^state +running" "the restored VM runs"
branch=""
for _ in $(seq 100); do
  "${C[@]}" list --json >"$dir/after.json" 2>/dev/null
  branch=$(epoch_lines "$dir/after.json" | awk -v s="${saved:-0}" '$1 > s && $2 == 2 {print $1; exit}')
  [ -n "$branch" ] && break
  sleep 0.1
done
[ -n "$branch" ] && echo "ok: epoch $branch builds on epoch 2" \
  || fail "a later epoch builds on epoch 2" "an epoch > ${saved:-?} with parent 2" "none" "$dir/after.json"
expect_rc 4 "restore of an unknown epoch" -- "${C[@]}" restore 999999
expect_text "$dir/err" "^ckpt restore: .*epoch 999999" "the unknown epoch is named"
expect_rc 4 "restore --json of an unknown epoch" -- "${C[@]}" restore --epoch 999999 --json
expect_text "$dir/out" '"code": "not_found"' "--json prints the error object"

# --- compact, live (the store has branched at 2: compact to an epoch of the running line).
expect_rc 0 "snapshot --tag t2" -- "${C[@]}" snapshot --tag t2
base=$(sed -nE 's/^epoch ([0-9]+) committed.*/\1/p' "$dir/out")
expect_rc 1 "offline compact while the daemon writes is refused" -- "$ckpt" compact --store "$store" --to-epoch "$base"
expect_rc 0 "compact --to-epoch $base (live)" -- "${C[@]}" compact --to-epoch "$base"
expect_text "$dir/out" "epoch $base is the new base" "compact names the new base"
expect_rc 0 "list after compact" -- "${C[@]}" list
expect_eq "$(awk 'NR == 2 {print $1, $2}' "$dir/out")" "$base base" "the oldest epoch is now base $base"
expect_rc 0 "compact --keep-last 5 (live retention)" -- "${C[@]}" compact --keep-last 5
expect_text "$dir/out" "^retention removed [0-9,]+ epochs?$" "retention says what it removed"
expect_rc 2 "compact with a bad duration" -- "${C[@]}" compact --keep-newer-than 3fortnights

# --- shutdown.
expect_rc 0 "shutdown --wait" -- "${C[@]}" shutdown --wait --timeout 60
expect_text "$dir/out" "stopped after" "shutdown --wait reports the stop"
# --wait returns once the daemon's process has gone (not merely its socket), so the store's writer lock is free:
# an offline compact straight after must get it. Three resumes and stops, as the daemon's exit takes varying time.
expect_rc 0 "compact --store right after shutdown --wait" -- "$ckpt" compact --store "$store" --keep-last 1000
wait "$daemon_pid"
expect_eq "$?" 0 "ckptd exits 0 after shutdown"
for round in 1 2 3; do
  start_daemon --resume
  expect_rc 0 "shutdown --wait ($round of 3)" -- "${C[@]}" shutdown --wait --timeout 60
  expect_rc 0 "compact --store right after shutdown --wait ($round of 3)" -- \
    "$ckpt" compact --store "$store" --keep-last 1000
  state=$(awk '{print $3}' "/proc/$daemon_pid/stat" 2>/dev/null)  # Z: exited, not yet reaped
  if [ -n "$state" ] && [ "$state" != Z ]; then
    fail "ckptd has exited once shutdown --wait returns ($round of 3)" "exited" "state $state"
    kill -9 "$daemon_pid"
  fi
  wait "$daemon_pid"
  expect_eq "$?" 0 "ckptd exits 0 ($round of 3)"
done
daemon_pid=""

# --- errors: no daemon, corruption, permission.
expect_rc 3 "status with no daemon" -- "${C[@]}" status
expect_text "$dir/err" "^ckpt status: .*no daemon is listening on $sock" "the message names the socket"
expect_rc 3 "status --json with no daemon" -- "${C[@]}" status --json
expect_text "$dir/out" '"code": "unreachable"' "--json prints the unreachable error"

# Flip one byte in the middle of an epoch file of a copy (the daemon resumes from the original below).
cp -r "$store" "$dir/bad"
victim=$(ls "$dir"/bad/*.epoch | sed -n 2p)
size=$(stat -c %s "$victim")
printf '\xa5' | dd of="$victim" bs=1 seek=$((size / 2)) conv=notrunc status=none
cmp -s "$victim" "$store/$(basename "$victim")" && fail "the byte flip changed the file" "different" "same"
expect_rc 5 "verify finds the flipped byte" -- "$ckpt" verify --store "$dir/bad"
expect_text "$dir/err" "$(basename "$victim").* offset [0-9]+" "verify names the file and the offset"

start_daemon --resume
if [ "$(id -u)" -ne 0 ]; then
  echo "skip: permission checks need root (to run ckpt as nobody)"
else
  # nobody must reach the socket's directory and the binary: the build may sit under /root.
  chmod 0755 "$dir"
  mkdir -m 0755 "$dir/bin" && install -m 0755 "$ckpt" "$dir/bin/ckpt"
  as_nobody() {
    if command -v setpriv >/dev/null; then setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
    else su -s /bin/sh nobody -c "$(printf '%q ' "$@")"; fi
  }
  expect_rc 6 "status as nobody (the socket is 0660 root:root)" -- as_nobody "$dir/bin/ckpt" --socket "$sock" status
  expect_text "$dir/err" "^ckpt status: permission denied: .*$sock.*root" "the message says who may use the socket"
  # With the mode opened up, the daemon's own peer check still refuses.
  chmod 0666 "$sock"
  expect_rc 6 "status as nobody past the file mode" -- as_nobody "$dir/bin/ckpt" --socket "$sock" status --json
  expect_text "$dir/out" '"code": "permission_denied"' "the daemon's refusal is permission_denied"
  chmod 0660 "$sock"
fi
expect_rc 0 "shutdown --wait of the resumed daemon" -- "${C[@]}" shutdown --wait --timeout 60
wait "$daemon_pid"
expect_eq "$?" 0 "the resumed ckptd exits 0"
daemon_pid=""

echo "live CLI: $failures failures"
[ "$failures" -eq 0 ]
