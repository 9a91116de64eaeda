#!/bin/bash
# Soak (issue 7, item 8; not part of CI): ckptd checkpoints a 256 MiB guest every 50 ms for DURATION seconds (default
# an hour) with retention on, a forced snapshot and a live restore now and then, and samples its RSS, open files and
# threads every 10 s. Compaction (retention) and restores of long chains need transient memory and files, so the
# check compares peaks: the second half of the run must not peak higher than the first half (after its first
# minute) beyond a small slack. Fails on that, on any daemon error, or if the store does not verify at the end. Usage: scripts/soak.sh [DURATION_SECONDS] [BUILD_DIR]
set -euo pipefail
duration=${1:-3600}
build=${2:-build}
work=$(mktemp -d /var/tmp/ckptd-soak-XXXXXX)
sock=$work/ckptd.sock
ckpt() { "$build/cli/ckpt" --socket "$sock" "$@"; }
"$build/daemon/ckptd" --store "$work/store" --socket "$sock" --backend auto --memory-mib 256 --workload random-writer \
  --epoch-ms 50 --retention-keep-last 200 --retention-interval 30 --verify-final >"$work/ckptd.log" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do ckpt status >/dev/null 2>&1 && break; sleep 0.1; done

sample() {  # rss_kib fds threads store_kib
  local rss threads
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
  threads=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")
  echo "$rss $(ls "/proc/$pid/fd" | wc -l) $threads $( (du -sk "$work/store" 2>/dev/null || true) | cut -f1)"
}

printf '%8s %10s %6s %8s %10s  %s\n' seconds rss_kib fds threads store_kib status
start=$(date +%s)
declare -A peak=([rss1]=0 [fds1]=0 [threads1]=0 [rss2]=0 [fds2]=0 [threads2]=0)
while (( $(date +%s) - start < duration )); do
  sleep 10
  elapsed=$(( $(date +%s) - start ))
  kill -0 $pid 2>/dev/null || { cat "$work/ckptd.log"; echo "FAIL: ckptd died"; exit 1; }
  if (( elapsed % 120 < 10 )); then ckpt snapshot --tag "soak-$elapsed" >/dev/null; fi
  if (( elapsed % 600 < 10 && elapsed > 60 )); then  # a live restore to the newest epoch tagged by the soak
    target=$(ckpt list | awk '$NF ~ /^soak-/ {print $1}' | tail -n1)
    [[ -n $target ]] && ckpt restore "$target" >/dev/null
  fi
  read -r rss fds threads store_kib <<<"$(sample)"
  printf '%8d %10d %6d %8d %10s  %s\n' "$elapsed" "$rss" "$fds" "$threads" "$store_kib" "$(ckpt status --brief)"
  (( elapsed < 60 && duration >= 180 )) && continue  # warm-up
  half=$(( elapsed * 2 < duration ? 1 : 2 ))
  (( rss > peak[rss$half] )) && peak[rss$half]=$rss
  (( fds > peak[fds$half] )) && peak[fds$half]=$fds
  (( threads > peak[threads$half] )) && peak[threads$half]=$threads
done
ckpt status
errors=$(ckpt status --json | sed -n 's/.*"errors_total": *\([0-9]*\).*/\1/p')
ckpt shutdown --wait >/dev/null
wait $pid || { cat "$work/ckptd.log"; echo "FAIL: ckptd exited non-zero"; exit 1; }
grep 'verify-final' "$work/ckptd.log" | sed 's/^[^ ]* [A-Z] //'
"$build/cli/ckpt" verify --store "$work/store"
echo "peaks, first half: rss ${peak[rss1]} KiB, ${peak[fds1]} fds, ${peak[threads1]} threads;" \
     "second half: rss ${peak[rss2]} KiB, ${peak[fds2]} fds, ${peak[threads2]} threads; daemon errors: ${errors:-?}"
fail=0
if (( duration < 600 )); then
  echo "(a run under 10 minutes is too short to judge growth: retention and restores come and go)"
  peak[rss2]=0 peak[fds2]=0 peak[threads2]=0
fi
(( peak[rss2] <= peak[rss1] + peak[rss1] / 20 + 16384 )) || { echo "FAIL: RSS peaks grew beyond 5% + 16 MiB"; fail=1; }
(( peak[fds2] <= peak[fds1] + 8 )) || { echo "FAIL: open files grew"; fail=1; }
(( peak[threads2] <= peak[threads1] + 2 )) || { echo "FAIL: threads grew"; fail=1; }
[[ ${errors:-1} -eq 0 ]] || { echo "FAIL: the daemon counted errors"; fail=1; }
(( fail == 0 )) && echo "PASS: soak of ${duration} s: memory, files and threads stayed bounded"
exit $fail
