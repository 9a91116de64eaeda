#!/bin/sh
# Runs inside the nested-KVM harness's guest (L1, busybox sh), started by scripts/kvm-harness/dirty-tracking-soak.sh:
# does an L2 Linux guest survive while its VMM keeps dirty tracking on? Each arm runs the memcheck guest for ARM_S
# seconds, booting it again whenever it dies:
#   qemu-ring  QEMU 7.2, -accel kvm,dirty-ring-size=4096, with a migration that never converges (1 MB/s, 1 ms
#              downtime limit) so that dirty tracking stays on, as ckptd keeps it on
#   qemu-log   the same with the dirty bitmap (QEMU uses KVM_CLEAR_DIRTY_LOG where the kernel has it)
#   qemu-idle  QEMU without a migration: no dirty tracking
#   ckptd-ring ckptd, ring tracking, 1 s epochs
# Prints "ARM ..." lines as it goes, the L2 shutdowns L1 traced (the harness traces them), and one
# "RESULT arm boots=B rounds=R deaths=D" line per arm. /b holds vmlinux, guest.cpio and QEMU (qemu-bundle.sh).
set -u
trap '' PIPE # a monitor command to a QEMU that already exited must not end the script
ARM_S=${ARM_S:-480}
KERNEL=/b/vmlinux
INITRD=/b/guest.cpio
QEMU="/b/lib/ld-linux-x86-64.so.2 --library-path /b/lib /b/bin/qemu-system-x86_64 -L /b/share"
CMDLINE="console=ttyS0 quiet panic=-1 reboot=t memcheck.mib=192 memcheck.interval_ms=2000"
TRACE=/sys/kernel/tracing/trace
CKPT="/harness/ckpt --socket /tmp/ckptd.sock"

now() { read -r t _ </proc/uptime; echo "${t%.*}"; }
shutdowns() { grep 'reason shutdown\|reason EXIT_SHUTDOWN' "$TRACE" 2>/dev/null; }
last_round() { tr -d '\r' 2>/dev/null <"$1" | grep -o 'MEMCHECK round=[0-9]*' | tail -n 1 | cut -d= -f2; }
report_death() { # report_death ARM ROUND
	echo "ARM $1: the guest died after memcheck round ${2:-0}; L1 traced:"
	shutdowns | tail -n 2 | sed 's/^ */  /'
}

qemu_arm() { # qemu_arm NAME ACCEL MIGRATE(0|1)
	local name=$1 accel=$2 migrate=$3 end boots=0 rounds=0 deaths=0 qemu_pid t r
	: >"$TRACE"
	end=$(($(now) + ARM_S))
	while [ "$(now)" -lt "$end" ]; do
		rm -f /tmp/mon.in /tmp/mon.out /tmp/q.log
		mkfifo /tmp/mon.in /tmp/mon.out
		# shellcheck disable=SC2086 # $QEMU is a command with its arguments
		$QEMU -accel "$accel" -cpu host -M pc -smp 2 -m 384M -nodefaults -no-user-config -display none -no-reboot \
			-kernel "$KERNEL" -initrd "$INITRD" -append "$CMDLINE" -serial file:/tmp/q.log -monitor pipe:/tmp/mon \
			>/tmp/q.err 2>&1 &
		qemu_pid=$!
		boots=$((boots + 1))
		exec 7>/tmp/mon.in
		cat /tmp/mon.out >/tmp/mon.log &
		t=0
		while [ -z "$(last_round /tmp/q.log)" ] && kill -0 "$qemu_pid" 2>/dev/null && [ $t -lt 300 ]; do
			sleep 1
			t=$((t + 1))
		done
		if [ "$migrate" = 1 ]; then
			echo "migrate_set_parameter max-bandwidth 1M" >&7
			echo "migrate_set_parameter downtime-limit 1" >&7
			echo 'migrate -d "exec:cat > /dev/null"' >&7
			sleep 5
			echo "info migrate" >&7
		fi
		while kill -0 "$qemu_pid" 2>/dev/null && [ "$(now)" -lt "$end" ]; do sleep 2; done
		r=$(last_round /tmp/q.log)
		rounds=$((rounds + ${r:-0}))
		if kill -0 "$qemu_pid" 2>/dev/null; then
			echo "quit" >&7
			sleep 2
			kill -9 "$qemu_pid" 2>/dev/null
		else
			deaths=$((deaths + 1))
			report_death "$name" "$r"
		fi
		wait "$qemu_pid" 2>/dev/null
		exec 7>&-
		if [ "$migrate" = 1 ] && ! grep -q 'Migration status: active' /tmp/mon.log; then
			echo "ARM $name: the migration was not seen active (dirty tracking may have been off)"
		fi
	done
	echo "RESULT $name boots=$boots rounds=$rounds deaths=$deaths"
}

ckptd_arm() {
	local end boots=0 rounds=0 deaths=0 pid state r
	: >"$TRACE"
	end=$(($(now) + ARM_S))
	while [ "$(now)" -lt "$end" ]; do
		rm -rf /tmp/store /tmp/ckptd.sock
		/harness/ckptd --backend kvm --tracking ring --vcpus 2 --memory-mib 384 --epoch-ms 1000 --store /tmp/store \
			--socket /tmp/ckptd.sock --kernel "$KERNEL" --initrd "$INITRD" --cmdline "$CMDLINE" --log-level warn \
			--retention-keep-last 4 >/tmp/ckptd.log 2>&1 &
		pid=$!
		boots=$((boots + 1))
		state=""
		while kill -0 "$pid" 2>/dev/null && [ "$(now)" -lt "$end" ] && [ "$state" != guest-stopped ]; do
			sleep 2
			state=$($CKPT status --json 2>/dev/null | sed -n 's/.*"state": *"\([a-z-]*\)".*/\1/p' | head -n 1)
		done
		r=$(last_round /tmp/store/console.log)
		rounds=$((rounds + ${r:-0}))
		if [ "$state" = guest-stopped ]; then
			deaths=$((deaths + 1))
			report_death ckptd-ring "$r"
		fi
		$CKPT shutdown >/dev/null 2>&1
		sleep 3
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	echo "RESULT ckptd-ring boots=$boots rounds=$rounds deaths=$deaths"
}

for arm in ${ARMS:-qemu-ring qemu-log qemu-idle ckptd-ring}; do
	case $arm in
	qemu-ring) qemu_arm qemu-ring kvm,dirty-ring-size=4096 1 ;;
	qemu-log) qemu_arm qemu-log kvm 1 ;;
	qemu-idle) qemu_arm qemu-idle kvm 0 ;;
	ckptd-ring) ckptd_arm ;;
	*) echo "unknown arm $arm" ;;
	esac
done
