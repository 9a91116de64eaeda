#!/usr/bin/env bash
# memory_bench.sh: the real daemon's memory beyond guest RAM. Runs BUILD_DIR/daemon/ckptd (software backend, a 4 GiB
# guest with 2 vCPUs writing scattered pages as fast as their write faults allow, 100 ms epochs, 256 MiB staging)
# for SECONDS and samples /proc/PID every 0.25 s:
#   VmRSS, VmHWM, RssAnon/RssFile/RssShmem from /proc/PID/status;
#   the guest's resident memory: Rss of the guest memfd's mapping ("/memfd:ckptd-guest") in /proc/PID/smaps —
#   guest pages the guest never touched are memfd holes and not resident, so "beyond the guest" is
#   VmRSS - guest Rss, never VmRSS - guest size;
#   the staging area's Rss (the anonymous mapping of exactly --staging-mib, pre-faulted at start).
# Prints a markdown section on stdout; progress on stderr.
# Usage: bench/memory_bench.sh BUILD_DIR [SECONDS] [MEMORY_MIB] [STAGING_MIB]
set -euo pipefail
build=${1:?usage: memory_bench.sh BUILD_DIR [SECONDS] [MEMORY_MIB] [STAGING_MIB]}
seconds=${2:-20}
memory_mib=${3:-4096}
staging_mib=${4:-256}
ckptd="$build/daemon/ckptd"
[[ -x "$ckptd" ]] || { echo "memory_bench.sh: $ckptd is missing (build the ckptd target)" >&2; exit 1; }

dir=$(mktemp -d /var/tmp/memory_bench.XXXXXX)
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

args=(--backend software --memory-mib "$memory_mib" --vcpus 2 --workload random-writer --workload-writes 64
      --workload-delay-loops 0 --epoch-ms 100 --staging-mib "$staging_mib" --store "$dir/store"
      --socket "$dir/ckptd.sock" --log-level warn)
"$ckptd" "${args[@]}" 2>"$dir/ckptd.log" &
pid=$!

# One sample: "vmrss vmhwm anon file shmem guest_rss staging_rss" in KiB.
sample() {
  local status smaps
  status=$(cat "/proc/$pid/status" 2>/dev/null) || return 1
  smaps=$(cat "/proc/$pid/smaps" 2>/dev/null) || return 1
  local from_status from_smaps
  from_status=$(awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} /^RssAnon:/{a=$2} /^RssFile:/{f=$2} /^RssShmem:/{s=$2}
                     END{print r+0, h+0, a+0, f+0, s+0}' <<<"$status")
  # smaps: a header line per mapping ("start-end perms offset dev inode [name]"), then "Key: value kB" lines.
  from_smaps=$(awk -v staging_kb=$((staging_mib * 1024)) '
    /^[0-9a-f]+-[0-9a-f]+ / { guest = ($0 ~ /\/memfd:ckptd-guest/); anon = (NF == 5); size = -1; next }
    /^Size:/ { size = $2; next }
    /^Rss:/ { if (guest) g += $2; else if (anon && size == staging_kb) st += $2; next }
    END { print g + 0, st + 0 }' <<<"$smaps")
  echo "$from_status $from_smaps"
}

echo "memory_bench: ckptd pid $pid, ${memory_mib} MiB guest, ${staging_mib} MiB staging, ${seconds} s" >&2
started=$(date +%s.%N)
samples="$dir/samples"
: >"$samples"
while :; do
  now=$(date +%s.%N)
  if awk -v a="$now" -v b="$started" -v s="$seconds" 'BEGIN{exit !(a - b >= s)}'; then break; fi
  kill -0 "$pid" 2>/dev/null || { echo "memory_bench.sh: ckptd exited early:" >&2; cat "$dir/ckptd.log" >&2; exit 1; }
  line=$(sample) && echo "$line" >>"$samples"
  sleep 0.25
done
status_line=$("$build/cli/ckpt" --socket "$dir/ckptd.sock" status --brief 2>/dev/null || true)
final=$(sample)
kill -TERM "$pid"
wait "$pid" || { echo "memory_bench.sh: ckptd failed at shutdown:" >&2; cat "$dir/ckptd.log" >&2; exit 1; }
pid=""

# The peak of VmRSS - guest Rss over the samples, and the figures of that sample.
read -r peak_beyond p_rss p_anon p_file p_shmem p_guest p_staging < <(awk '
  { beyond = $1 - $6; if (beyond > best) { best = beyond; line = beyond " " $1 " " $3 " " $4 " " $5 " " $6 " " $7 } }
  END { print line }' "$samples")
read -r f_rss f_hwm f_anon f_file f_shmem f_guest f_staging <<<"$final"
n=$(wc -l <"$samples")
guest_kib=$((memory_mib * 1024))
goal_kib=$((guest_kib * 3 / 100 + staging_mib * 1024))
mib() { awk -v k="$1" 'BEGIN{printf "%.1f MiB", k / 1024}'; }
verdict=$([[ $peak_beyond -le $goal_kib ]] && echo "**met**" || echo "**MISSED**")

cat <<EOF
## Daemon memory beyond guest RAM (real ckptd, software backend)

Command: \`bench/memory_bench.sh BUILD_DIR $seconds $memory_mib $staging_mib\`: \`ckptd ${args[*]}\` (store and socket in a
temporary directory) for $seconds s, sampled $n times from /proc/PID/status and /proc/PID/smaps. Guest resident memory =
Rss of the guest memfd's mapping in smaps (the memfd is shmem: it is also what RssShmem counts); untouched guest
pages are holes and not resident, so the figure that counts is VmRSS minus that Rss. At the end: \`${status_line:-ckpt status unavailable}\`.

| | peak sample | at the end |
|---|---|---|
| VmRSS | $(mib "$p_rss") | $(mib "$f_rss") (VmHWM $(mib "$f_hwm")) |
| guest memory resident (memfd mapping Rss) | $(mib "$p_guest") | $(mib "$f_guest") |
| **beyond the guest** (VmRSS - guest Rss) | **$(mib "$peak_beyond")** | $(mib $((f_rss - f_guest))) |
| of which staging area (pre-faulted) | $(mib "$p_staging") | $(mib "$f_staging") |
| of which other anonymous memory (RssAnon - staging) | $(mib $((p_anon - p_staging))) | $(mib $((f_anon - f_staging))) |
| of which file-backed (binary, libraries) | $(mib "$p_file") | $(mib "$f_file") |
| RssShmem (cross-check of the guest figure; read a moment apart from smaps) | $(mib "$p_shmem") | $(mib "$f_shmem") |

Goal: beyond the guest <= 3% of guest RAM ($(mib $((guest_kib * 3 / 100)))) + the staging bound (${staging_mib} MiB) =
$(mib "$goal_kib"): $verdict (peak $(mib "$peak_beyond"), sampled every 0.25 s; VmHWM - final guest Rss =
$(mib $((f_hwm - f_guest))) is a lower bound of the true peak, since the guest only grows).
EOF
