#!/bin/bash
# A store of COUNT epochs (default 100,000) in one chain: listed offline and live (paged: no reply near the protocol's
# limit), verified, restored, resumed, compacted by hand and by the daemon's own policy, all under a hard limit of
# 256 open files. ckptd writes a small idle store; tests/scale/extend_store appends the epochs (each restores to the
# same memory and vCPU state as ckptd's final epoch), so a correct restore of any of them equals that epoch's image.
# Usage: scale_test.sh BUILD_DIR [COUNT]
set -uo pipefail
build=$1
count=${2:-100000}
ckptd=$build/daemon/ckptd
ckpt=$build/cli/ckpt
dir=$(mktemp -d)
trap 'kill -9 $daemon 2>/dev/null; rm -rf "$dir"' EXIT
failures=0
daemon=0
exec 3>&1  # timings go here, past any redirection of the timed command's output
ok() { echo "ok: $1"; }
fail() { echo "FAIL: $1"; failures=$((failures + 1)); }
check() {  # check DESCRIPTION -- command...: passes when the command exits 0
  local what=$1
  shift 2
  if "$@" >"$dir/out" 2>"$dir/err"; then ok "$what"; else fail "$what (exit $?)"; tail -5 "$dir/out" "$dir/err"; fi
}
timed() {  # timed LABEL -- command...: runs it, prints its wall time
  local label=$1 t0 t1
  shift 2
  t0=$(date +%s.%N)
  "$@"
  local rc=$?
  t1=$(date +%s.%N)
  printf 'time: %-28s %6.2f s\n' "$label" "$(echo "$t1 - $t0" | bc)" >&3
  return $rc
}
start_ckptd() {  # start_ckptd LOG ARGS...: starts ckptd and waits for its socket to answer
  local log=$1
  shift
  "$ckptd" --backend software --store "$dir/s" --socket "$dir/sock" --memory-mib 8 --vcpus 1 --workload idle \
    "$@" >"$log" 2>&1 &
  daemon=$!
  for _ in $(seq 1 1200); do "$ckpt" --socket "$dir/sock" status >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "ckptd did not answer within 120 s"; cat "$log"; exit 1
}
stop_ckptd() {
  "$ckpt" --socket "$dir/sock" shutdown --wait >/dev/null
  wait $daemon
}
live() { "$ckpt" --socket "$dir/sock" "$@"; }
status_field() { live status --json | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# The small store: a base and a final epoch of an idle 8 MiB guest.
start_ckptd "$dir/ckptd0.log" --epoch-ms 3600000
stop_ckptd || fail "ckptd wrote the small store"
first=$(ls "$dir/s" | grep -c '\.epoch$')
final=$((first - 1))
check "the daemon's final epoch $final restores" -- "$ckpt" restore --store "$dir/s" --epoch "$final" --to "$dir/want.img"
timed "extend by $count epochs" -- "$build/tests/extend_store" "$dir/s" "$count" || fail "extend_store"
total=$((first + count))
newest=$((total - 1))

ulimit -Hn 256 -Sn 256  # far fewer than the chain's files: nothing below may hold one open per epoch
timed "offline list" -- "$ckpt" list --store "$dir/s" >"$dir/list.txt" || fail "offline list"
[ "$(grep -cE '^ +[0-9]+  (base|delta) ' "$dir/list.txt")" -eq "$total" ] && ok "offline list shows $total epochs" ||
  fail "offline list shows $(grep -cE '^ +[0-9]+  (base|delta) ' "$dir/list.txt") epochs, want $total"
timed "offline verify" -- "$ckpt" verify --store "$dir/s" >"$dir/verify.txt" 2>&1 || fail "verify"
grep -q "^ok: $total epochs" "$dir/verify.txt" && ok "verify checked $total epochs" || { fail "verify"; cat "$dir/verify.txt"; }
timed "offline restore of the newest" -- "$ckpt" restore --store "$dir/s" --to "$dir/got.img" >/dev/null ||
  fail "restore of epoch $newest"
cmp -s "$dir/want.img" "$dir/got.img" && ok "epoch $newest (a chain of $total) restores bit-exact" ||
  fail "epoch $newest restores to other memory than epoch $final"

# Resume with the policy off, so the chain stays whole: the VM is rebuilt from it; the live list pages through it.
timed "resume (policy off)" -- start_ckptd "$dir/ckptd1.log" --resume --epoch-ms 3600000 --verify-final \
  --compact-max-chain 0 --compact-max-read-amplification 0 --retention-keep-last 0
timed "live list --json" -- live list --json >"$dir/live.json" || fail "live list"
python3 - "$dir/live.json" "$total" <<'PY' && ok "live list --json holds all $total epochs, in order" || fail "live list"
import json, sys
epochs = [e["epoch"] for e in json.load(open(sys.argv[1]))]
sys.exit(0 if len(epochs) == int(sys.argv[2]) and epochs == sorted(epochs) else 1)
PY
stop_ckptd || fail "the resumed ckptd stopped cleanly"
grep -q "bit-exact" "$dir/ckptd1.log" && ok "verify-final after resuming from a chain of $total epochs" ||
  { fail "verify-final"; tail -5 "$dir/ckptd1.log"; }

# Compaction by hand, offline.
timed "offline compact --keep-last 10" -- "$ckpt" compact --store "$dir/s" --keep-last 10 >"$dir/compact.txt" ||
  fail "compact"
[ "$(ls "$dir/s" | grep -c '\.epoch$')" -eq 10 ] && ok "compact left 10 epochs" || fail "compact left $(ls "$dir/s" | grep -c '\.epoch$')"
check "verify after compact" -- "$ckpt" verify --store "$dir/s"

# The daemon's own policy shrinks a long store: extend it again and resume with the defaults.
"$build/tests/extend_store" "$dir/s" 5000 >/dev/null || fail "extend_store again"
start_ckptd "$dir/ckptd2.log" --resume --epoch-ms 3600000 --verify-final
for _ in $(seq 1 600); do
  [ "$(status_field "int(d['compaction']['rebases'] >= 1 and d['compaction']['store_epochs'] <= 1100 and d['compaction']['chain_length'] <= 1001)")" = 1 ] && break
  sleep 0.1
done
shape=$(status_field "d['compaction']['store_epochs'], d['compaction']['chain_length'], d['compaction']['rebases']")
read -r kept chain rebases <<<"$shape"
[ "$kept" -ge 1000 ] && [ "$kept" -le 1100 ] && [ "$chain" -ge 1 ] && [ "$chain" -le 1001 ] && [ "$rebases" -ge 1 ] &&
  ok "the daemon's policy took 5,010 epochs down to $kept (chain $chain, $rebases rebase)" ||
  fail "the daemon's policy left $kept epochs, a chain of $chain, $rebases rebases"
stop_ckptd || fail "ckptd stopped cleanly"
grep -q "bit-exact" "$dir/ckptd2.log" && ok "verify-final after the policy ran" || fail "verify-final after the policy"
check "verify at the end" -- "$ckpt" verify --store "$dir/s"

echo "$failures failures"
[ "$failures" -eq 0 ]
