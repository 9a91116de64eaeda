#!/bin/sh
# The Linux demo: ckptd boots a Linux guest (memcheck running in it) on KVM and checkpoints it every second while its
# console lines and the epoch figures print side by side; then a snapshot, a live restore of it (the guest carries
# on from there: same boot id, its rounds continue, no corrupt page), a shutdown and an offline verify.
# Runs wherever /dev/kvm works: on the host (`make run` there) or inside the nested harness (`make run-linux`).
# POSIX sh, so it runs in the harness's busybox too.
#
#   demo.sh CKPTD CKPT KERNEL INITRD [WORKDIR]
set -u
ckptd=$1 ckpt_bin=$2 kernel=$3 initrd=$4
work=${5:-/tmp/ckptd-linux-demo}
store=$work/store
sock=$work/ckptd.sock
rm -rf "$work"
mkdir -p "$work"
ckpt() { "$ckpt_bin" --socket "$sock" "$@"; }
fail() {
	echo "FAILED: $*"
	tail -n 20 "$work/ckptd.log"
	exit 1
}
step() { printf '\n== %s\n' "$*"; }
console_lines() { cat "$store/console.log" 2>/dev/null | tr -d '\r'; }

step "ckptd boots Linux ($(basename "$kernel")) with 2 vCPUs and 384 MiB; an epoch every second"
"$ckptd" --backend kvm --store "$store" --socket "$sock" --vcpus 2 --memory-mib 384 --epoch-ms 1000 \
	--kernel "$kernel" --initrd "$initrd" \
	--cmdline "console=ttyS0 quiet panic=-1 reboot=t memcheck.mib=128 memcheck.interval_ms=2000" \
	>"$work/ckptd.log" 2>&1 &
pid=$!
t=0
until ckpt status --brief >/dev/null 2>&1; do
	kill -0 "$pid" 2>/dev/null || fail "ckptd exited"
	[ $t -lt 60 ] || fail "ckptd did not answer within 60 s"
	sleep 1
	t=$((t + 1))
done

step "the guest's console (new lines) and ckpt status --brief, once a second, until memcheck has run 4 rounds"
shown=0 t=0
while [ "$(console_lines | grep -c 'MEMCHECK round=')" -lt 4 ]; do
	[ $t -lt 240 ] || fail "no 4 memcheck rounds within 240 s"
	sleep 1
	t=$((t + 1))
	n=$(console_lines | wc -l)
	[ "$n" -gt "$shown" ] && console_lines | sed -n "$((shown + 1)),${n}p" | sed 's/^/  console | /'
	shown=$n
	echo "  status  | $(ckpt status --brief)"
done

step "ckpt snapshot, then the guest runs on for a round"
out=$(ckpt snapshot --tag demo) || fail "ckpt snapshot: $out"
echo "$out"
epoch=$(echo "$out" | sed -n 's/^epoch \([0-9]*\) committed.*/\1/p')
before=$(console_lines | grep -o 'MEMCHECK round=.*' | tail -n 1)
rounds=$(console_lines | grep -c 'MEMCHECK round=')
t=0
while [ "$(console_lines | grep -c 'MEMCHECK round=')" -le "$rounds" ] && [ $t -lt 60 ]; do sleep 1; t=$((t + 1)); done
console_lines | grep -o 'MEMCHECK round=.*' | tail -n 1 | sed 's/^/  console | /'

step "ckpt restore $epoch: the guest goes back to the snapshot and carries on"
ckpt restore "$epoch" || fail "ckpt restore $epoch"
mark="[ckptd: the guest continues from epoch $epoch]"
t=0
until console_lines | awk -v m="$mark" '$0 == m { n = NR } n && NR > n && /MEMCHECK round=/ { f = 1 } END { exit !f }'; do
	[ $t -lt 90 ] || fail "no memcheck line after the restore within 90 s"
	sleep 1
	t=$((t + 1))
done
echo "  at the snapshot: $before"
console_lines | awk -v m="$mark" '$0 == m { n = NR } n && NR >= n' | head -n 3 | sed 's/^/  console | /'

step "ckpt status, shutdown (a final epoch), offline verify"
ckpt status
ckpt shutdown >/dev/null || fail "ckpt shutdown"
wait "$pid" || fail "ckptd exited with status $?"
"$ckpt_bin" verify --store "$store" || fail "verify"
if console_lines | grep -q 'MEMCHECK-BAD\|bad=[1-9]'; then fail "memcheck found corrupt pages"; fi
echo "demo done: no memcheck round found a corrupt page"
