#!/bin/sh
# Runs inside the nested-KVM harness's guest (L1, busybox sh), started by bench/nested_compare.sh: ckptd and QEMU
# side by side on L1's /dev/kvm with the same kernel, initramfs and guest size. Prints "RESULT name value" lines.
# TCG runs L1: every time here is indicative only.
#
# /harness/ckptd and /harness/ckpt (the harness copies their libraries); /b holds vmlinux, guest.cpio and QEMU:
# bin/qemu-system-x86_64, lib/ (its libraries, the loader among them), share/ (firmware). Environment: RESTORES (restores per VMM in the restore loop, default 10).
set -u
trap '' PIPE # a monitor command to a QEMU that already exited must not end the script
RESTORES=${RESTORES:-10}
KERNEL=/b/vmlinux
INITRD=/b/guest.cpio
QEMU="/b/lib/ld-linux-x86-64.so.2 --library-path /b/lib /b/bin/qemu-system-x86_64 -L /b/share"
BASE_CMDLINE="console=ttyS0 quiet panic=-1 reboot=t"
WORKLOAD="memcheck.mib=192 memcheck.interval_ms=2000"

now() { read -r t _ </proc/uptime; echo "$t"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
result() { echo "RESULT $*"; }

# count FILE PATTERN: lines of FILE matching PATTERN (0 while FILE does not exist yet).
count() {
	local n
	n=$(grep -c -- "$2" "$1" 2>/dev/null)
	echo "${n:-0}"
}

# wait_for FILE PATTERN COUNT SECONDS PID: until FILE has COUNT lines matching PATTERN; 1 if PID exits or time runs out.
wait_for() {
	local t=0
	while [ "$(count "$1" "$2")" -lt "$3" ]; do
		kill -0 "$5" 2>/dev/null || return 1
		[ "$t" -lt $(($4 * 10)) ] || return 1
		sleep 0.1
		t=$((t + 1))
	done
}

# ---- QEMU: the guest on ttyS0 into a file, its monitor (HMP) on a pipe pair ----
qemu_start() { # qemu_start MACHINE CONSOLE_FILE CMDLINE [QEMU ARGS...]
	local machine=$1 console=$2 cmdline=$3
	shift 3
	rm -f /tmp/mon.in /tmp/mon.out /tmp/mon.log "$console"
	mkfifo /tmp/mon.in /tmp/mon.out
	# shellcheck disable=SC2086 # $QEMU is a command with its arguments
	$QEMU -accel kvm -cpu host -M "$machine" -smp 2 -m 384M -nodefaults -no-user-config -display none -no-reboot \
		-kernel "$KERNEL" -initrd "$INITRD" -append "$cmdline" -serial "file:$console" -monitor pipe:/tmp/mon \
		"$@" >/tmp/qemu.err 2>&1 &
	qemu_pid=$!
	exec 7>/tmp/mon.in
	cat /tmp/mon.out >/tmp/mon.log &
}
monitor() { echo "$*" >&7 2>/dev/null; }
qemu_stop() {
	monitor quit
	local t=0
	while kill -0 "$qemu_pid" 2>/dev/null && [ $t -lt 50 ]; do sleep 0.1; t=$((t + 1)); done
	kill -9 "$qemu_pid" 2>/dev/null
	wait "$qemu_pid" 2>/dev/null
	exec 7>&-
}

# ---- ckptd ----
CKPT="/harness/ckpt --socket /tmp/ckptd.sock"
ckptd_start() { # ckptd_start STORE CMDLINE [ckptd args...]
	local store=$1 cmdline=$2
	shift 2
	rm -rf "$store" /tmp/ckptd.sock
	/harness/ckptd --backend kvm --tracking ring --vcpus 2 --memory-mib 384 --epoch-ms 1000 --store "$store" \
		--socket /tmp/ckptd.sock --kernel "$KERNEL" --initrd "$INITRD" --cmdline "$cmdline" --log-level warn \
		--retention-keep-last 4 "$@" >>/tmp/ckptd.log 2>&1 &
	ckptd_pid=$!
}
ckptd_stop() {
	$CKPT shutdown >/dev/null 2>&1
	wait "$ckptd_pid" 2>/dev/null
}

# ---- 1. boot to init: QEMU pc, QEMU microvm, ckptd; the same kernel, initramfs and command line ----
boot_cmdline="$BASE_CMDLINE memcheck=off"
for machine in pc microvm; do
	t0=$(now)
	qemu_start "$machine" /tmp/boot.log "$boot_cmdline"
	if wait_for /tmp/boot.log 'CKPT-GUEST: init' 1 120 "$qemu_pid"; then
		result "boot_to_init_s qemu-$machine $(since "$t0")"
	else
		result "boot_to_init_s qemu-$machine failed"
		tail -n 5 /tmp/boot.log /tmp/qemu.err
	fi
	qemu_stop
done
t0=$(now)
ckptd_start /tmp/boot-store "$boot_cmdline"
if wait_for /tmp/boot-store/console.log 'CKPT-GUEST: init' 1 120 "$ckptd_pid"; then
	result "boot_to_init_s ckptd $(since "$t0")"
else
	result "boot_to_init_s ckptd failed"
	tail -n 5 /tmp/ckptd.log
fi
ckptd_stop

# ---- 2. stopping the guest to save it: QEMU's migrate-to-file downtime against ckptd's epoch pause ----
# The same workload: memcheck rewriting about 12% of 192 MiB every 2 s.
run_cmdline="$BASE_CMDLINE $WORKLOAD"
qemu_start pc /tmp/q.log "$run_cmdline"
if wait_for /tmp/q.log 'MEMCHECK round=' 3 300 "$qemu_pid"; then
	monitor "migrate_set_parameter max-bandwidth 4G"
	monitor 'migrate "exec:cat > /tmp/qemu.state"'
	t=0
	until grep -q 'Migration status: \(completed\|failed\)' /tmp/mon.log || [ $t -ge 300 ]; do
		monitor "info migrate"
		sleep 1
		t=$((t + 1))
	done
	result "qemu_migrate_status $(grep -o 'Migration status: [a-z]*' /tmp/mon.log | tail -n 1 | cut -d' ' -f3)"
	result "qemu_migrate_total_ms $(grep -o 'total time: [0-9]*' /tmp/mon.log | tail -n 1 | cut -d' ' -f3)"
	result "qemu_migrate_downtime_ms $(grep -o 'downtime: [0-9]*' /tmp/mon.log | tail -n 1 | cut -d' ' -f2)"
	result "qemu_state_bytes $(wc -c </tmp/qemu.state)"
else
	result "qemu_migrate_status no-guest"
fi
qemu_stop

ckptd_start /tmp/store "$run_cmdline"
if wait_for /tmp/store/console.log 'MEMCHECK round=' 8 300 "$ckptd_pid"; then
	status=$($CKPT status --json)
	pause=$(echo "$status" | tr -d ' \n' | grep -o '"pause_ms":{[^}]*}')
	for k in count p50 p99 max; do
		v=$(echo "$pause" | sed -n "s/.*\"$k\":\([0-9.e+-]*\).*/\1/p")
		result "ckptd_pause_ms_$k $(awk -v v="$v" 'BEGIN { printf (v == int(v) ? "%d" : "%.1f"), v }')"
	done
else
	result "ckptd_pause_ms_count no-guest"
fi

# ---- 3. restore loops: each VMM restores the same saved state RESTORES times; the guest must print a new round ----
# ckptd: a live `ckpt restore A` of one snapshot, over and over, in the daemon started above.
ok=0 failed=0
A=$($CKPT snapshot --tag loop | sed -n 's/^epoch \([0-9]*\) committed.*/\1/p')
i=1
while [ "$i" -le "$RESTORES" ] && [ -n "$A" ]; do
	marks=$(count /tmp/store/console.log 'ckptd: the guest continues')
	$CKPT restore "$A" >/dev/null 2>&1 || echo "ckptd restore $i: ckpt restore failed"
	wait_for /tmp/store/console.log 'ckptd: the guest continues' $((marks + 1)) 60 "$ckptd_pid"
	from=$(grep -n 'ckptd: the guest continues' /tmp/store/console.log | tail -n 1 | cut -d: -f1)
	t=0 outcome=stalled
	while [ $t -lt 60 ]; do
		if tail -n +"$from" /tmp/store/console.log | grep -q 'MEMCHECK round=.* bad=0 '; then outcome=ok; break; fi
		case "$($CKPT status 2>/dev/null | head -n 1)" in *stopped*) outcome=stopped; break ;; esac
		sleep 1
		t=$((t + 1))
	done
	echo "ckptd restore $i: $outcome"
	if [ "$outcome" = ok ]; then ok=$((ok + 1)); else
		failed=$((failed + 1))
		$CKPT status | sed -n 's/^\(guest stop\|state\)/  &/p'
		tail -n 2 /tmp/ckptd.log
	fi
	i=$((i + 1))
done
result "restores ckptd ok=$ok failed=$failed"
ckptd_stop

# QEMU: a new QEMU with -incoming from the state file each time.
ok=0 failed=0
i=1
while [ "$i" -le "$RESTORES" ] && [ -s /tmp/qemu.state ]; do
	qemu_start pc /tmp/qr.log "$run_cmdline" -incoming "exec:cat /tmp/qemu.state"
	if wait_for /tmp/qr.log 'MEMCHECK round=.* bad=0 ' 1 60 "$qemu_pid"; then outcome=ok; else
		if kill -0 "$qemu_pid" 2>/dev/null; then outcome=stalled; else outcome=exited; fi
	fi
	echo "qemu restore $i: $outcome"
	if [ "$outcome" = ok ]; then ok=$((ok + 1)); else
		failed=$((failed + 1))
		tail -n 3 /tmp/qr.log /tmp/qemu.err
	fi
	qemu_stop
	i=$((i + 1))
done
result "restores qemu ok=$ok failed=$failed"
