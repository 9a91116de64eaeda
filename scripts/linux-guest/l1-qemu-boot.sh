#!/bin/sh
# Runs inside the nested-KVM harness's guest (L1), as the test of qemu-boot-check.sh: boots the Linux test guest (L2)
# with the QEMU from the bundle at /b on L1's real /dev/kvm, stamps every console line with the seconds since QEMU
# started, and checks what init and memcheck print. Not run on the host.
#
# /b holds bin/qemu-system-x86_64 with lib/ (its libraries, run through lib/ld-linux-x86-64.so.2) and share/ (the
# firmware -L needs), the kernel (vmlinux or vmlinuz) and guest.cpio. Environment: L2_SMP, L2_MEM, L2_APPEND (the
# memcheck.* parameters; must include memcheck.rounds=N and memcheck.then=reboot so the guest ends), L2_TIMEOUT, and
# L2_SHELL_CHECK=1: once init offers the console shell, press Enter and type a command whose output only a running
# shell prints. Prints "RESULT name value" lines; exits 0 iff init ran, every round reported bad=0, memcheck exited 0
# and (with L2_SHELL_CHECK) the shell answered.
set -u
kernel=$(find /b -maxdepth 1 -name "vmlinu[xz]-*" | head -n1)
qemu="/b/lib/ld-linux-x86-64.so.2 --library-path /b/lib /b/bin/qemu-system-x86_64 -L /b/share"
cmdline="console=ttyS0 quiet panic=-1 reboot=t $L2_APPEND"
echo "l1: kernel $kernel, smp ${L2_SMP}, mem ${L2_MEM}, cmdline: $cmdline"

# The guest's console input (QEMU's stdin). With L2_SHELL_CHECK, it waits for init's offer of a shell, then types
# Enter and the command; the answer, SHELL-42, appears only if a shell ran it (the echoed input shows $((6*7))).
console_input() {
	[ "${L2_SHELL_CHECK:-0}" = 1 ] || return 0
	until grep -q 'press Enter for a shell' /tmp/l2.log 2>/dev/null; do
		[ ! -e /tmp/l2.done ] || return 0
		sleep 0.2
	done
	printf '\n'
	sleep 1
	# shellcheck disable=SC2016 # expanded by the guest's shell, not here
	printf '%s\n' 'echo SHELL-$((6*7)) tty=$(tty)'
}

cr=$(printf '\r')
: >/tmp/l2.log
read -r t0 _ </proc/uptime
# shellcheck disable=SC2086 # $qemu is a command with its arguments
console_input | timeout "${L2_TIMEOUT}" $qemu -accel kvm -cpu host -M pc -smp "$L2_SMP" -m "$L2_MEM" -nodefaults \
	-no-user-config -display none -no-reboot -kernel "$kernel" -initrd /b/guest.cpio -append "$cmdline" \
	-serial stdio 2>&1 | {
	while IFS= read -r line; do
		read -r now _ </proc/uptime
		printf '[%7.2f] %s\n' "$(awk -v a="$t0" -v b="$now" 'BEGIN { print b - a }')" "${line%"$cr"}" >>/tmp/l2.log
	done
	touch /tmp/l2.done
}
read -r t1 _ </proc/uptime
cat /tmp/l2.log

at() { grep -m1 -- "$1" /tmp/l2.log | cut -c2-8 | tr -d ' '; }
echo "RESULT qemu_total_s $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
echo "RESULT to_init_s $(at 'CKPT-GUEST: init')"
echo "RESULT to_first_round_s $(at 'MEMCHECK round=')"
echo "RESULT guest_uptime_at_init_s $(grep -m1 'CKPT-GUEST: init' /tmp/l2.log | sed -n 's/.* uptime=\([0-9.]*\).*/\1/p')"
echo "RESULT round_ms $(sed -n 's/.*MEMCHECK round=.* ms=\([0-9]*\).*/\1/p' /tmp/l2.log | tr '\n' ' ')"

rc=0
grep -q 'CKPT-GUEST: init' /tmp/l2.log || { echo "l1: FAIL: init never printed its marker"; rc=1; }
grep -q 'MEMCHECK round=' /tmp/l2.log || { echo "l1: FAIL: no MEMCHECK round line"; rc=1; }
if grep 'MEMCHECK round=' /tmp/l2.log | grep -qv ' bad=0 '; then echo "l1: FAIL: a round saw bad pages"; rc=1; fi
grep -q 'CKPT-GUEST: memcheck exited with status 0' /tmp/l2.log || { echo "l1: FAIL: memcheck did not exit 0"; rc=1; }
if [ "${L2_SHELL_CHECK:-0}" = 1 ]; then
	grep -q 'SHELL-42 tty=/dev/ttyS0' /tmp/l2.log || { echo "l1: FAIL: the console shell did not answer"; rc=1; }
fi
exit $rc
