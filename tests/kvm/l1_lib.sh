# Sourced by the scripts that run inside the nested-KVM harness's guest (busybox sh: linux_guest_in_l1.sh,
# linux_disk_in_l1.sh), which the launchers copy to /harness/bin/l1_lib.sh. What they share: the pass/fail count,
# the guest's console log, ckptd's status, and the repeat of a check whose L2 guest the emulator killed.
#
# The sourcing script sets CKPT (the ckpt binary) and, per check, store, sock and daemon_pid, and defines
# start_daemon.

TRACE=/sys/kernel/tracing/trace

pass=0
fail=0
crash_intended=0 # set while a test crashes its guest on purpose
l2_died=0        # a failed check saw the guest triple-fault, or stuck in a page-fault loop, without the test's doing
other_failure=0  # a check failed for another reason
daemon_pid=""

ok() { pass=$((pass + 1)); echo "PASS: $*"; }
# A failed check is the emulator's (l2_died) if L1 traced the guest dying or stuck while the test did not crash it on
# purpose, and so is every later failure of the same attempt (a dead guest cannot power off, say). A failure before
# that (other_failure) stands, even if the guest dies later in the same attempt.
bad() {
	fail=$((fail + 1))
	echo "FAIL: $*"
	show_guest_faults
	if [ "$l2_died" = 1 ]; then
		echo "(after the guest died on its own: a consequence)"
	elif [ "$crash_intended" = 0 ] && [ -r "$TRACE" ] && guest_died_on_its_own; then
		l2_died=1
	else
		other_failure=1
	fi
}
guest_died_on_its_own() {
	grep -q 'reason shutdown\|reason EXIT_SHUTDOWN' "$TRACE" && return 0
	[ "$(grep 'kvm_inj_exception: #PF' "$TRACE" | grep -vc reinjected)" -ge 5 ] || return 1
	# KVM's instruction emulator injecting page faults over and over: the guest is stuck, as in two runs on
	# 2026-12-06, once at boot with no restore before (docs/testing.md, "A Linux guest").
	echo "the guest is stuck taking page faults that L1's KVM injects (traced above)"
}

# The triple faults L1 traced since the last forget_guest_faults, with the guest's RIP at each (the harness traces
# every shutdown exit: on AMD, KVM resets the vCPU, so ckptd itself cannot say where the guest was). Debian ships
# the kernel's symbols only in its -dbg package, so the addresses stay numbers here.
show_guest_faults() {
	[ -r "$TRACE" ] || return 0
	grep 'reason shutdown\|reason EXIT_SHUTDOWN\|kvm_inj_exception' "$TRACE" | tail -n 10 | sed 's/^ */  traced in L1: /'
}
forget_guest_faults() { [ -w "$TRACE" ] && : >"$TRACE"; }
# L1 traced a shutdown of the guest at a user-space RIP (below 2^47: at most 12 hex digits; the kernel's are 16).
traced_user_mode_shutdown() {
	[ -r "$TRACE" ] && grep 'reason shutdown' "$TRACE" | grep -q 'rip 0x[0-9a-f]\{1,12\} '
}

# The guest's console so far (console.log and the one rotation before it), without carriage returns.
console_text() { cat "$store/console.log.1" "$store/console.log" 2>/dev/null | tr -d '\r'; }

field() { # field NAME LINE: the value of NAME= in a guest program's line
	echo "$2" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"
}

# status_number KEY: a number from `ckpt status --json` (empty if the daemon does not answer).
status_number() {
	"$CKPT" --socket "$sock" status --json 2>/dev/null | sed -n "s/.*\"$1\": *\([0-9][0-9]*\).*/\1/p" | head -n 1
}

# The guest stopped on its own or on purpose (status state guest-stopped).
guest_stopped() { "$CKPT" --socket "$sock" status --json 2>/dev/null | grep -q '"state": *"guest-stopped"'; }

# stop_state: waits up to 60 s for ckptd to report the guest stopped; prints the state and the stop reason.
stop_state() {
	local t=0
	until guest_stopped || [ $t -ge 60 ]; do
		sleep 1
		t=$((t + 1))
	done
	local json
	json=$("$CKPT" --socket "$sock" status --json 2>/dev/null | tr -d '\n')
	echo "$(echo "$json" | sed -n 's/.*"state": *"\([a-z-]*\)".*/\1/p') $(echo "$json" |
		sed -n 's/.*"guest_stop": *{[^}]*"reason": *"\([a-z-]*\)".*/\1/p')"
}

# A check that failed half way leaves its ckptd running: it must not hold L1's memory through the next one.
stop_daemon() {
	[ -n "$daemon_pid" ] || return 0
	kill -9 "$daemon_pid" 2>/dev/null
	wait "$daemon_pid" 2>/dev/null
}

# attempts NAME COMMAND...: runs COMMAND; a run whose failures were all the emulator's (bad() set l2_died and not
# other_failure) runs again, saying so, up to MAX_ATTEMPTS times in all and MAX_REPEATS repeats in the whole script
# (each repeat must fit the harness's time limit): in this emulator L2 guests die that way now and then whatever
# the VMM (docs/testing.md, "A Linux guest"). Any other failure, or a guest that dies in every attempt, stands.
# Six attempts: on 2026-12-07 the emulator killed the ring-mode guest at boot four times in a row in one run (and
# 10 of 24 loop runs that day had a death), while the same binaries lost 2 of 20 the day before.
MAX_ATTEMPTS=${MAX_ATTEMPTS:-6}
MAX_REPEATS=${MAX_REPEATS:-8}
repeated=0
attempts() {
	local name=$1 attempt=1 pass0 fail0
	shift
	while :; do
		pass0=$pass fail0=$fail l2_died=0 other_failure=0 crash_intended=0
		forget_guest_faults
		"$@"
		stop_daemon
		{ [ "$fail" -gt "$fail0" ] && [ "$l2_died" = 1 ] && [ "$other_failure" = 0 ] &&
			[ "$attempt" -lt "$MAX_ATTEMPTS" ] && [ "$repeated" -lt "$MAX_REPEATS" ]; } || return 0
		attempt=$((attempt + 1))
		echo "$name: the guest died or got stuck on its own (traced above); attempt $attempt of $MAX_ATTEMPTS"
		pass=$pass0 fail=$fail0 repeated=$((repeated + 1))
	done
}

# summary NAME: the last line of a run ("NAME: N passed, M failed"); its status is the run's.
summary() {
	[ "$repeated" -eq 0 ] || echo "$1: $repeated check(s) repeated after the guest died or got stuck"
	echo "$1: $pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}
