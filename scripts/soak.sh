#!/bin/bash
# Soak (not part of CI; docs/testing.md, "Soak"): ckptd runs the packaged configuration (packaging/ckptd.conf: a
# 1 GiB guest, 2 vCPUs, hot-set workload, default retention and compaction) with 5 ms epochs for DURATION seconds
# (default an hour: about 720,000 epochs where the host keeps up), with a forced snapshot every 2 minutes and a live
# restore every 10. Every 10 s it samples the daemon's RSS, open files and threads, the store's epochs, bytes on disk
# and the running chain's length. At the end: shutdown with verify-final, a resume from the store (its own final
# epoch verified too), and an offline verify of the whole store.
# It fails on a daemon error, a failed verify, or growth: the second half of the run must not peak higher than the
# first half (after its first minute) beyond a small slack, and the chain and the store must stay within the limits
# the configuration sets. Usage: scripts/soak.sh [DURATION_SECONDS] [BUILD_DIR]
set -euo pipefail
duration=${1:-3600}
build=${2:-build}
conf=$(dirname "$0")/../packaging/ckptd.conf
work=$(mktemp -d /var/tmp/ckptd-soak-XXXXXX)
sock=$work/ckptd.sock
ckpt() { "$build/cli/ckpt" --socket "$sock" "$@"; }
# The packaged settings, except where this machine's daemon lives and talks, and the epoch interval.
run_ckptd() {
  "$build/daemon/ckptd" --config "$conf" --store "$work/store" --socket "$sock" --socket-group "" --metrics-listen "" \
    --epoch-ms 5 --verify-final "$@" >>"$work/ckptd.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do ckpt status >/dev/null 2>&1 && return; sleep 0.1; done
  cat "$work/ckptd.log"; echo "FAIL: ckptd did not start"; exit 1
}
field() { ckpt status --json | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
run_ckptd
trap 'kill -9 $pid 2>/dev/null || true; [[ -n ${KEEP_SOAK:-} ]] || rm -rf "$work"' EXIT

keep_last=$(sed -n 's/^retention-keep-last *= *\([0-9]*\).*/\1/p' "$conf")
max_chain=$(sed -n 's/^compact-max-chain *= *\([0-9]*\).*/\1/p' "$conf")
keep_last=${keep_last:-1000} max_chain=${max_chain:-1000}

sample() {  # rss_kib fds threads store_kib epochs_committed store_epochs chain
  local rss threads
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
  threads=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")
  echo "$rss $(ls "/proc/$pid/fd" | wc -l) $threads $( (du -sk "$work/store" 2>/dev/null || true) | cut -f1)" \
       "$(field "d['epochs_committed'], d['compaction']['store_epochs'], d['compaction']['chain_length']")"
}

printf '%8s %10s %5s %8s %10s %10s %7s %6s\n' seconds rss_kib fds threads store_kib epochs stored chain
start=$(date +%s)
declare -A peak=([rss1]=0 [fds1]=0 [threads1]=0 [rss2]=0 [fds2]=0 [threads2]=0 [stored]=0 [chain]=0)
first=""
while (( $(date +%s) - start < duration )); do
  sleep 10
  elapsed=$(( $(date +%s) - start ))
  kill -0 $pid 2>/dev/null || { tail -50 "$work/ckptd.log"; echo "FAIL: ckptd died"; exit 1; }
  if (( elapsed % 120 < 10 )); then ckpt snapshot --tag "soak-$elapsed" >/dev/null; fi
  if (( elapsed % 600 < 10 && elapsed > 60 )); then  # a live restore to a recent epoch
    target=$(ckpt list --json | python3 -c "import json,sys; e=json.load(sys.stdin); print(e[-50]['epoch'] if len(e)>50 else '')")
    [[ -n $target ]] && ckpt restore "$target" >/dev/null
  fi
  read -r rss fds threads store_kib epochs stored chain <<<"$(sample)"
  line=$(printf '%8d %10d %5d %8d %10s %10s %7s %6s' "$elapsed" "$rss" "$fds" "$threads" "$store_kib" "$epochs" "$stored" "$chain")
  echo "$line"
  [[ -z $first ]] && first=$line
  (( stored > peak[stored] )) && peak[stored]=$stored
  (( chain > peak[chain] )) && peak[chain]=$chain
  (( elapsed < 60 && duration >= 180 )) && continue  # warm-up
  half=$(( elapsed * 2 < duration ? 1 : 2 ))
  (( rss > peak[rss$half] )) && peak[rss$half]=$rss
  (( fds > peak[fds$half] )) && peak[fds$half]=$fds
  (( threads > peak[threads$half] )) && peak[threads$half]=$threads
done
last=$line
ckpt status
errors=$(field "d['errors_total']")
ckpt shutdown --wait >/dev/null
wait $pid || { tail -50 "$work/ckptd.log"; echo "FAIL: ckptd exited non-zero"; exit 1; }
# Resume from what the hour left behind, run a little, and stop again (its final epoch is verified too).
t0=$(date +%s.%N)
run_ckptd
resumed_in=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
sleep 5
ckpt shutdown --wait >/dev/null
wait $pid || { tail -50 "$work/ckptd.log"; echo "FAIL: the resumed ckptd exited non-zero"; exit 1; }
grep -E 'verify-final|resumed the VM' "$work/ckptd.log" | sed 's/^[^ ]* [A-Z] //'
verify_start=$(date +%s.%N)
"$build/cli/ckpt" verify --store "$work/store"
echo "verify took $(python3 -c "import time; print(f'{time.time() - $verify_start:.1f}')") s; resume answered in ${resumed_in} s"
echo "first sample: $first"
echo "last sample:  $last"
echo "peaks, first half: rss ${peak[rss1]} KiB, ${peak[fds1]} fds, ${peak[threads1]} threads;" \
     "second half: rss ${peak[rss2]} KiB, ${peak[fds2]} fds, ${peak[threads2]} threads;" \
     "store epochs at most ${peak[stored]}, chain at most ${peak[chain]}; daemon errors: ${errors:-?}"
fail=0
if (( duration < 600 )); then
  echo "(a run under 10 minutes is too short to judge growth: retention and restores come and go)"
  peak[rss2]=0 peak[fds2]=0 peak[threads2]=0
fi
(( peak[rss2] <= peak[rss1] + peak[rss1] / 20 + 16384 )) || { echo "FAIL: RSS peaks grew beyond 5% + 16 MiB"; fail=1; }
(( peak[fds2] <= peak[fds1] + 8 )) || { echo "FAIL: open files grew"; fail=1; }
(( peak[threads2] <= peak[threads1] + 2 )) || { echo "FAIL: threads grew"; fail=1; }
# Chain: at most max-chain deltas plus the base, plus the epochs committed while a rebase runs.
(( peak[chain] <= max_chain + 200 )) || { echo "FAIL: the chain outgrew compact-max-chain"; fail=1; }
# Store: what retention keeps, plus one chain it still needs, plus a retention batch.
(( peak[stored] <= keep_last + max_chain + keep_last / 8 + 300 )) || { echo "FAIL: the store outgrew retention"; fail=1; }
[[ ${errors:-1} -eq 0 ]] || { echo "FAIL: the daemon counted errors"; fail=1; }
(( fail == 0 )) && echo "PASS: soak of ${duration} s: memory, files, threads, chain and store stayed bounded"
exit $fail
