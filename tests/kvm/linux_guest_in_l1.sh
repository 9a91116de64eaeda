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

TRACE=/sys/kernel/tracing/trace

pass=0
fail=0
daemon_pid=""
ok() { pass=$((pass + 1)); echo "PASS: $*"; }
bad() {
	fail=$((fail + 1))
	echo "FAIL: $*"
	show_guest_faults
	[ "$crash_intended" = 0 ] && [ -r "$TRACE" ] || return 0
	if grep -q 'reason shutdown\|reason EXIT_SHUTDOWN' "$TRACE"; then
		l2_died=1
	elif [ "$(grep 'kvm_inj_exception: #PF' "$TRACE" | grep -vc reinjected)" -ge 5 ]; then
		# KVM's instruction emulator injecting page faults over and over: the guest is stuck, as in two runs on
		# 2026-12-06, once at boot with no restore before (docs/testing.md, "A Linux guest").
		echo "linux_guest: the guest is stuck taking page faults that L1's KVM injects (traced above)"
		l2_died=1
	fi
}
crash_intended=0 # set while the test crashes its guest on purpose
l2_died=0        # a failed check saw the guest triple-fault, or stuck in a page-fault loop, without the test's doing

# The triple faults L1 traced since the last forget_guest_faults, with the guest's RIP at each (the harness traces
# every shutdown exit: on AMD, KVM resets the vCPU, so ckptd itself cannot say where the guest was). Debian ships
# the kernel's symbols only in its -dbg package, so the addresses stay numbers here.
show_guest_faults() {
	[ -r "$TRACE" ] || return 0
	grep 'reason shutdown\|reason EXIT_SHUTDOWN\|kvm_inj_exception' "$TRACE" | tail -n 10 | sed 's/^ */  traced in L1: /'
}
forget_guest_faults() { [ -w "$TRACE" ] && : >"$TRACE"; }

# The guest's console so far (console.log and the one rotation before it), without carriage returns.
console_text() { cat "$store/console.log.1" "$store/console.log" 2>/dev/null | tr -d '\r'; }

# The memcheck lines of the console log, oldest first ("MEMCHECK round=R bad=B ... uptime=U boot=ID").
# A shell prompt may share a line with them (scripts/linux-guest/README.md), so they are matched anywhere in a line.
# Only complete lines: console.log is read while ckptd appends to it, and a line cut before its last field (ms=)
# would be read with fields missing (a test run once took such a line's empty boot id for a reboot).
MEMCHECK_LINE='MEMCHECK round=.* total_bad=[0-9]* ms=[0-9]'
memcheck_lines() {
	console_text | grep -o "$MEMCHECK_LINE.*"
}
field() { # field NAME LINE
	echo "$2" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"
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
		--socket "$sock" --kernel "$kernel" --initrd "$INITRD" --cmdline "$CMDLINE reboot=$reboot" --log-level warn "$@" \
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

# A mode that failed half way leaves its ckptd running: it must not hold L1's memory through the next mode.
stop_daemon() {
	kill -9 "$daemon_pid" 2>/dev/null
	wait "$daemon_pid" 2>/dev/null
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
		check_crash_and_restore
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

# stop_state: waits up to 60 s for ckptd to report the guest stopped; prints the state and the stop reason.
stop_state() {
	local state="" t=0
	while [ $t -lt 60 ]; do
		state=$("$CKPT" --socket "$sock" status --json | sed -n 's/.*"state": *"\([a-z-]*\)".*/\1/p' | head -n 1)
		[ "$state" = guest-stopped ] && break
		sleep 1
		t=$((t + 1))
	done
	echo "$state $("$CKPT" --socket "$sock" status --json | tr -d '\n' |
		sed -n 's/.*"guest_stop": *{[^}]*"reason": *"\([a-z-]*\)".*/\1/p')"
}

# check_stop_request COMMAND REASON: the guest's shell runs COMMAND (reboot -f, poweroff -f); ckptd must report the
# guest stopped for REASON, take no snapshot of it, and bring it back from epoch A.
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

# `ckpt console --attach` runs a command in the guest's shell; then the guest crashes itself and must stop cleanly,
# refuse snapshots, and come back from epoch A.
check_crash_and_restore() {
	local m out
	check_attach
	# The guest crashes itself: sysrq-c panics it, panic=-1 reboots, reboot=t triple-faults. The console shell
	# check_attach started reads it (Enter first, in case that check failed before starting it).
	crash_intended=1
	send_console '\n'
	sleep 2
	send_console 'echo c > /proc/sysrq-trigger\n'
	local got
	got=$(stop_state)
	if [ "$got" = "guest-stopped triple-fault" ]; then
		ok "$mode: a guest that panics and triple-faults stops cleanly (status: guest-stopped, triple-fault)"
		forget_guest_faults # the intended one
		crash_intended=0
	else
		bad "$mode: after sysrq-c the daemon says '$got', not 'guest-stopped triple-fault'"
	fi
	if "$CKPT" --socket "$sock" snapshot >/dev/null 2>&1; then
		bad "$mode: a snapshot of a stopped guest was taken"
	else
		ok "$mode: a snapshot of a stopped guest is refused"
	fi
	m=$(marks "$A_epoch")
	if out=$("$CKPT" --socket "$sock" restore "$A_epoch" 2>&1); then
		check_continues A "$m" "restore of epoch $A_epoch after the crash"
	else
		bad "$mode: ckpt restore $A_epoch after the crash: $out"
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
			"$CKPT" --socket "$sock" status --json 2>/dev/null | grep -q '"state": *"guest-stopped"' && break
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

# A check whose guest died or got stuck on its own (bad() sets l2_died while crash_intended is 0) runs again, saying
# so, up to MAX_ATTEMPTS times in all and MAX_REPEATS repeats in the whole run (each costs up to 4 minutes, and the
# run must fit the harness's limit): in this emulator L2 guests die that way now and then whatever the VMM
# (docs/testing.md, "A Linux guest"). Any other failure, or a guest that dies in every attempt, fails the test.
MAX_ATTEMPTS=${MAX_ATTEMPTS:-3}
MAX_REPEATS=${MAX_REPEATS:-5}
repeated=0
attempts() { # attempts NAME COMMAND...
	local name=$1 attempt=1
	shift
	while :; do
		pass0=$pass fail0=$fail l2_died=0 crash_intended=0
		forget_guest_faults
		"$@"
		stop_daemon
		{ [ "$fail" -gt "$fail0" ] && [ "$l2_died" = 1 ] && [ "$attempt" -lt "$MAX_ATTEMPTS" ] &&
			[ "$repeated" -lt "$MAX_REPEATS" ]; } || return 0
		attempt=$((attempt + 1))
		echo "linux_guest: $name: the guest died or got stuck on its own (traced above); attempt $attempt of $MAX_ATTEMPTS"
		pass=$pass0 fail=$fail0 repeated=$((repeated + 1))
	done
}

[ "${SKIP_BZIMAGE:-0}" = 1 ] || attempts bzImage check_bzimage_boot
# FULL_MODE (default: the first mode; none: no mode) runs every check; the others (the tracking modes differ only in
# how dirty pages are found) leave out the console attach and the crash, unless EVERY_MODE_FULL=1.
full_mode=${FULL_MODE:-$1}
for m in "$@"; do
	checks=core
	{ [ "$m" = "$full_mode" ] || [ "${EVERY_MODE_FULL:-0}" = 1 ]; } && checks=full
	attempts "$m" run_mode "$m" "$checks"
done
[ "$repeated" -eq 0 ] || echo "linux_guest: $repeated check(s) repeated after the guest died or got stuck"
echo "linux_guest: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
