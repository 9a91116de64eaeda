#!/bin/sh
# Runs inside the nested-KVM harness's guest (busybox sh; see tests/kvm/linux_guest_test.sh, which starts it):
# ckptd boots a Linux guest whose init runs memcheck (tests/guest/), and the guest must not be able to tell that it
# was restored.
#
#   linux_guest_in_l1.sh TRACKING_MODE...
#
# For each mode: boot (2 CPUs up, kvm-clock registered); wait for memcheck rounds; snapshot A; pause periodic epochs;
# snapshot B; let the guest run on; kill -9 ckptd; ckptd --resume (from B); live `ckpt restore A`; the guest stops
# itself; shutdown (verify-final) and `ckpt verify`. How it stops: in the mode FULL_MODE names (default: the first;
# every mode with EVERY_MODE_FULL=1), after `ckpt console --attach`, it crashes (sysrq-c typed into its console:
# panic=-1 reboot=t make it triple-fault); otherwise it runs `reboot -f` in the clear-log mode (reboot=a: the ACPI
# reset register) and `poweroff -f` (ACPI S5) in the others. Each stop must show in status with its reason, end
# the epochs, and a restore of A must bring the guest back. After every restore the first new memcheck line must continue from that epoch: the same boot id
# (no reboot), a round within the rounds printed just before and just after the epoch was taken, bad=0, and an uptime
# no earlier than at the epoch. Last line: "linux_guest: N passed, M failed".
set -u

CKPTD=/harness/ckptd
CKPT=/harness/ckpt
KERNEL=/harness/guest/vmlinux   # the ELF vmlinux: it boots without decompressing itself (9 s less under TCG)
BZIMAGE=/harness/guest/bzImage  # the same kernel as Debian ships it
INITRD=/harness/guest/initrd.cpio
SCRIPT=/harness/bin/script # util-linux's script(1): a terminal for `ckpt console --attach`
# memcheck keeps 192 MiB (in a 384 MiB guest) and rewrites about 12% of it every 2 s: about 12 MB/s of dirty pages,
# which the stores (in L1's RAM) must hold for the length of a mode.
# reboot=t: a reboot (and so a panic, with panic=-1) triple-faults; the clear-log mode boots with reboot=a, so that
# its `reboot -f` writes the ACPI reset register instead (run_mode).
CMDLINE="console=ttyS0 quiet panic=-1 memcheck.mib=${MEMCHECK_MIB:-192} memcheck.interval_ms=2000"
reboot=t
BOOT_TIMEOUT=${BOOT_TIMEOUT:-150}

# shellcheck source=tests/kvm/l1_lib.sh
. /harness/bin/l1_lib.sh

# The memcheck lines of the console log, oldest first ("MEMCHECK round=R bad=B ... uptime=U boot=ID").
# A shell prompt may share a line with them (scripts/linux-guest/README.md), so they are matched anywhere in a line.
# Only complete lines: console.log is read while ckptd appends to it, and a line cut before its last field (ms=)
# would be read with fields missing (a test run once took such a line's empty boot id for a reboot).
MEMCHECK_LINE='MEMCHECK round=.* total_bad=[0-9]* ms=[0-9]'
memcheck_lines() {
	console_text | grep -o "$MEMCHECK_LINE.*"
}
line_count() { memcheck_lines | wc -l; }
last_line() { memcheck_lines | tail -n 1; }

# wait_for_lines N SECONDS: until the console log holds more than N memcheck lines; prints the first line after N.
wait_for_lines() {
	local n=$1 t=0
	while [ "$(line_count)" -le "$n" ]; do
		if [ "$t" -ge "$2" ]; then return 1; fi
		sleep 1
		t=$((t + 1))
	done
	memcheck_lines | sed -n "$((n + 1))p"
}

kernel=$KERNEL
start_daemon() { # start_daemon [--resume]
	"$CKPTD" --backend kvm --tracking "$mode" --vcpus 2 --memory-mib 384 --epoch-ms 1000 --store "$store" \
		--restore "${RESTORE:-lazy}" --socket "$sock" --kernel "$kernel" --initrd "$INITRD" --cmdline "$CMDLINE reboot=$reboot" --log-level warn "$@" \
		>>"$store.daemon.log" 2>&1 &
	daemon_pid=$!
	local t=0
	until "$CKPT" --socket "$sock" status --brief >/dev/null 2>&1; do
		if ! kill -0 "$daemon_pid" 2>/dev/null || [ $t -ge 60 ]; then
			echo "ckptd did not come up:"
			tail -n 20 "$store.daemon.log"
			return 1
		fi
		sleep 1
		t=$((t + 1))
	done
}

# snapshot NAME: takes an epoch; sets NAME_epoch, NAME_round_lo/_hi (rounds printed before and after) and NAME_uptime.
snapshot() {
	local before after out epoch
	before=$(last_line)
	out=$("$CKPT" --socket "$sock" snapshot --tag "$1") || { bad "$mode: snapshot $1: $out"; return 1; }
	after=$(last_line)
	epoch=$(echo "$out" | sed -n 's/^epoch \([0-9]*\) committed.*/\1/p')
	eval "$1_epoch=$epoch"
	eval "$1_round_lo=$(field round "$before")"
	eval "$1_round_hi=$(field round "$after")"
	eval "$1_uptime=$(field uptime "$before" | cut -d. -f1)"
	echo "$mode: snapshot $1 = epoch $epoch (rounds $(field round "$before")..$(field round "$after"))"
}

# The console after ckptd's last "[ckptd: the guest continues from epoch N]" line (written at every resume and
# restore): what the restored guest printed.
after_mark() {
	console_text | awk -v mark="[ckptd: the guest continues from epoch $1]" '$0 == mark { n = NR; out = "" } n { out = out $0 "\n" }
			END { if (n) printf "%s", out; else exit 1 }'
}

marks() { # marks EPOCH: how many times the console says the guest continued from EPOCH
	console_text | grep -cxF "[ckptd: the guest continues from epoch $1]"
}

# check_continues NAME MARKS_BEFORE WHAT: the first memcheck line the guest printed after it was restored to epoch
# NAME (the mark of that restore is the one after the MARKS_BEFORE there were before it) continues that epoch.
check_continues() {
	local name=$1 before=$2 what=$3 line="" round lo hi up uptime epoch t=0
	eval "epoch=\$${name}_epoch; lo=\$${name}_round_lo; hi=\$${name}_round_hi; up=\$${name}_uptime"
	while [ -z "$line" ]; do
		# console.log is written every 200 ms: until this restore's mark is there, an older one would be found
		[ "$(marks "$epoch")" -gt "$before" ] && line=$(after_mark "$epoch" | grep -o "$MEMCHECK_LINE.*" | head -n 1)
		[ -n "$line" ] && break
		if [ $t -ge 90 ]; then
			bad "$mode: $what: no memcheck line after the restore mark for epoch $epoch within 90 s; console since:"
			after_mark "$epoch" | tail -n 20
			"$CKPT" --socket "$sock" status | head -n 4
			return 1
		fi
		sleep 1
		t=$((t + 1))
	done
	round=$(field round "$line")
	uptime=$(field uptime "$line" | cut -d. -f1)
	echo "$mode: $what: first line: $line"
	if [ "$(field boot "$line")" != "$boot_id" ]; then bad "$mode: $what: boot id changed (the guest rebooted)"; return 1; fi
	if [ "$(field bad "$line")" != 0 ]; then bad "$mode: $what: memcheck found corrupt pages: $line"; return 1; fi
	if [ "$round" -le "$lo" ] || [ "$round" -gt $((hi + 1)) ]; then
		bad "$mode: $what: round $round does not continue epoch $epoch (rounds $lo..$hi when it was taken)"
		return 1
	fi
	if [ "$uptime" -lt "$up" ]; then bad "$mode: $what: uptime went back from $up to $uptime"; return 1; fi
	if after_mark "$epoch" | grep -q 'CKPT-GUEST: init\|MEMCHECK-START'; then
		bad "$mode: $what: the guest started again (init or memcheck restarted)"
		return 1
	fi
	ok "$mode: $what continues from its epoch (round $round, boot $boot_id, bad=0)"
}

send_console() { "$CKPT" --socket "$sock" console --send "$1"; }

# `ckpt console --attach` on a terminal (script(1) makes one): Enter starts the guest's console shell, then a
# command whose answer only a running shell prints (the echoed input shows $((6*7)), the answer 42), then Ctrl-]
# detaches. The attach session must show the answer and end with exit status 0 and its detach message.
check_attach() {
	local out=/tmp/attach-$mode.out rc t=0
	{
		sleep 2
		printf '\r'
		sleep 2
		# shellcheck disable=SC2016 # expanded by the guest's shell, not here
		printf '%s\r' 'echo ATTACH-$((6*7))'
		until grep -q 'ATTACH-42' "$out" 2>/dev/null || [ $t -ge 60 ]; do sleep 1; t=$((t + 1)); done
		printf '\035'
	} | timeout 120 "$SCRIPT" -qfec "$CKPT --socket $sock console --attach" /dev/null >"$out" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && grep -q 'ATTACH-42' "$out" && grep -q 'ckpt: detached' "$out"; then
		ok "$mode: ckpt console --attach ran a command in the guest's shell and detached on Ctrl-]"
	else
		bad "$mode: ckpt console --attach (exit $rc) did not show the shell's answer and detach; it showed:"
		tr -d '\r' <"$out" | tail -n 15
	fi
}

run_mode() { # run_mode MODE full|core
	mode=$1 checks=$2
	reboot=t
	[ "$mode" = clear-log ] && [ "$checks" = core ] && reboot=a
	store=/tmp/store-$mode
	sock=/tmp/ckptd-$mode.sock
	rm -rf "$store" "$store.daemon.log"
	start_daemon || { bad "$mode: ckptd did not start"; return; }
	local t0 line
	t0=$(date +%s)
	line=$(wait_for_lines 1 "$BOOT_TIMEOUT") || {
		bad "$mode: no second memcheck line within $BOOT_TIMEOUT s of boot"
		tail -n 30 "$store/console.log"
		"$CKPT" --socket "$sock" status | head -n 12
		tail -n 10 "$store.daemon.log"
		kill -9 "$daemon_pid"
		return
	}
	ok "$mode: booted to memcheck in $(($(date +%s) - t0)) s (indicative): $line"
	boot_id=$(field boot "$line")
	# Both vCPUs came up (the MP and ACPI tables), and kvmclock registered (the hypervisor and KVM CPUID leaves;
	# the guest may still prefer the TSC, which KVM reports invariant).
	init=$(console_text | grep -m1 '^CKPT-GUEST: init ')
	if [ "$(field cpus "$init")" = 2 ] && field clocksources "$init" | grep -q 'kvm-clock'; then
		ok "$mode: the guest runs on 2 CPUs with kvm-clock available: $init"
	else
		bad "$mode: the guest does not see 2 CPUs and kvm-clock: $init"
	fi

	snapshot A || return
	wait_for_lines "$(line_count)" 60 >/dev/null
	"$CKPT" --socket "$sock" pause >/dev/null
	snapshot B || return
	wait_for_lines "$(line_count)" 60 >/dev/null  # the guest runs on past B; kill -9 loses that

	kill -9 "$daemon_pid"
	wait "$daemon_pid" 2>/dev/null
	start_daemon --resume || { bad "$mode: ckptd --resume did not start"; return; }
	check_continues B 0 "kill -9 + --resume"

	local m
	m=$(marks "$A_epoch")
	if out=$("$CKPT" --socket "$sock" restore "$A_epoch" 2>&1); then
		check_continues A "$m" "live restore of epoch $A_epoch"
	else
		bad "$mode: ckpt restore $A_epoch: $out"
	fi

	# The console attach and a guest's crash do not depend on the tracking mode: only the first mode checks them.
	# The other modes each check one more way a guest stops itself: a reset, a power-off.
	if [ "$checks" = full ]; then
		check_attach
		# sysrq-c panics the guest, panic=-1 reboots it, reboot=t makes that a triple fault. The console shell
		# check_attach started reads it (check_stop_request presses Enter first, in case the attach failed early).
		check_stop_request 'echo c > /proc/sysrq-trigger' triple-fault
	elif [ "$mode" = clear-log ]; then
		check_stop_request 'reboot -f' reset
	else
		check_stop_request 'poweroff -f' poweroff
	fi

	wait_for_lines "$(line_count)" 60 >/dev/null
	if console_text | grep -q 'MEMCHECK-BAD\|bad=[1-9]'; then
		bad "$mode: memcheck reported corrupt pages:"
		console_text | grep 'MEMCHECK-BAD\|bad=[1-9]' | head -n 5
	else
		ok "$mode: no memcheck round in the whole console log found a corrupt page"
	fi
	if ! "$CKPT" --socket "$sock" shutdown --wait --timeout 120 >/dev/null 2>&1; then
		bad "$mode: shutdown failed"
		kill -9 "$daemon_pid" 2>/dev/null # or the wait below would wait for good
	fi
	wait "$daemon_pid" 2>/dev/null
	if "$CKPT" verify --store "$store" >/dev/null 2>&1; then ok "$mode: the store verifies"; else bad "$mode: verify"; fi
	rm -rf "$store"
}

# check_stop_request COMMAND REASON: the guest's shell runs COMMAND (a sysrq crash, reboot -f, poweroff -f); ckptd
# must report the guest stopped for REASON, take no snapshot of it, and bring it back from epoch A.
check_stop_request() {
	local m out got
	crash_intended=1
	send_console '\n'
	sleep 2
	send_console "$1\n"
	got=$(stop_state)
	if [ "$got" = "guest-stopped $2" ]; then
		ok "$mode: a guest that runs '$1' stops cleanly (status: guest-stopped, $2)"
		forget_guest_faults
		crash_intended=0
	else
		# A triple fault that L1 traced in user code did not come from the command (a reboot or power-off runs in
		# the kernel): the guest died on its own just before, as in the 6.1 loop of 2026-12-07 (memcheck's code,
		# RIP 0x402a1d), and counts as such.
		[ "$2" != triple-fault ] && traced_user_mode_shutdown && crash_intended=0
		bad "$mode: after '$1' the daemon says '$got', not 'guest-stopped $2'"
		crash_intended=0
		return 1
	fi
	if "$CKPT" --socket "$sock" snapshot >/dev/null 2>&1; then
		bad "$mode: a snapshot of a stopped guest was taken"
	else
		ok "$mode: a snapshot of a stopped guest is refused"
	fi
	m=$(marks "$A_epoch")
	if out=$("$CKPT" --socket "$sock" restore "$A_epoch" 2>&1); then
		check_continues A "$m" "restore of epoch $A_epoch after '$1'"
	else
		bad "$mode: ckpt restore $A_epoch after '$1': $out"
	fi
}

# The bzImage path of the boot protocol (setup header, protected-mode kernel at its load address, the kernel
# decompressing itself), once: ckptd boots Debian's bzImage to the guest's init and shuts down cleanly.
check_bzimage_boot() {
	mode=ring store=/tmp/store-bzimage sock=/tmp/ckptd-bzimage.sock kernel=$BZIMAGE
	rm -rf "$store" "$store.daemon.log"
	if start_daemon; then
		local t=0
		until console_text | grep -q '^CKPT-GUEST: init kernel='; do
			[ $t -ge "$BOOT_TIMEOUT" ] && break
			guest_stopped && break
			sleep 1
			t=$((t + 1))
		done
		if console_text | grep -q '^CKPT-GUEST: init kernel='; then
			ok "bzImage: booted to the guest's init in $t s (indicative): $(console_text | grep -m1 '^CKPT-GUEST: init')"
		else
			bad "bzImage: the guest's init did not start (waited $t s); console and daemon log:"
			console_text | tail -n 20
			tail -n 10 "$store.daemon.log"
		fi
		"$CKPT" --socket "$sock" shutdown --wait --timeout 120 >/dev/null 2>&1 || bad "bzImage: shutdown failed"
	else
		bad "bzImage: ckptd did not start"
	fi
	stop_daemon
	rm -rf "$store" "$store.daemon.log"
	kernel=$KERNEL
}

[ "${SKIP_BZIMAGE:-0}" = 1 ] || attempts bzImage check_bzimage_boot
# FULL_MODE (default: the first mode; none: no mode) runs every check; the others (the tracking modes differ only in
# how dirty pages are found) leave out the console attach and the crash, unless EVERY_MODE_FULL=1.
full_mode=${FULL_MODE:-$1}
# One line per mode run, for loops that repeat a mode (tests/kvm/linux_guest_loop.sh counts them).
run=0
for m in "$@"; do
	checks=core
	{ [ "$m" = "$full_mode" ] || [ "${EVERY_MODE_FULL:-0}" = 1 ]; } && checks=full
	fail0=$fail repeated0=$repeated
	attempts "$m" run_mode "$m" "$checks"
	run=$((run + 1))
	if [ "$fail" -gt "$fail0" ]; then
		result=failed
		[ "$other_failure" = 0 ] && [ "$l2_died" = 1 ] && result="failed: the guest died on its own"
	else
		result=clean
	fi
	echo "linux_guest: run $run ($m): $result, guest deaths repeated: $((repeated - repeated0))"
done
summary linux_guest
