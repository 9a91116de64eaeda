#!/bin/sh
# Runs in the nested harness's L1 for bench/disk_nested.sh: the same guest with a disk, without and then with disk
# traffic; prints "RESULT <arm> <name> <value>" lines for the host to put in a table.
set -u
CKPTD=/harness/ckptd
CKPT=/harness/ckpt
SECONDS_PER_ARM=${ARM_SECONDS:-60}
BASE="console=ttyS0 quiet panic=-1 reboot=t memcheck.mib=64 memcheck.interval_ms=1000"

arm() { # arm NAME EXTRA_CMDLINE
	name=$1 store=/tmp/store-$1 sock=/tmp/ckptd-$1.sock
	rm -rf "$store"
	"$CKPTD" --backend kvm --tracking ring --vcpus 2 --memory-mib 256 --epoch-ms 200 --store "$store" --socket "$sock" \
		--kernel /harness/guest/vmlinux --initrd /harness/guest/initrd.cpio --cmdline "$BASE $2" \
		--disk /harness/guest/disk.img --log-level debug >"$store.log" 2>&1 &
	pid=$!
	t=0
	# Up: two memcheck rounds, and with diskcheck two of its rounds too.
	until [ "$(grep -c 'MEMCHECK round=' "$store/console.log" 2>/dev/null)" -ge 2 ] &&
		{ [ -z "$2" ] || [ "$(grep -c 'DISKCHECK round=' "$store/console.log" 2>/dev/null)" -ge 2 ]; }; do
		sleep 1
		t=$((t + 1))
		[ $t -lt 240 ] || { echo "RESULT $name epochs the guest did not come up"; kill -9 $pid; return; }
	done
	from=$(wc -l <"$store.log")
	s0=$("$CKPT" --socket "$sock" status --json)
	sleep "$SECONDS_PER_ARM"
	s1=$("$CKPT" --socket "$sock" status --json)
	"$CKPT" --socket "$sock" shutdown --wait --timeout 300 >/dev/null 2>&1
	wait $pid
	num() { echo "$1" | sed -n "s/.*\"$2\": *\([0-9]*\).*/\1/p" | head -n 1; }
	epochs=$(($(num "$s1" epochs_committed) - $(num "$s0" epochs_committed)))
	stored=$(($(num "$s1" bytes_stored_total) - $(num "$s0" bytes_stored_total)))
	# "epoch capture: P pages, B disk blocks, pause a, harvest b, copy c, rearm d, state e, resume f ms"
	tail -n +"$((from + 1))" "$store.log" | grep 'epoch capture: ' | sed 's/.*epoch capture: //' | awk -v name="$name" '
		{
			pages = $1; blocks = $3
			pause = 0
			for (i = 6; i < NF; i += 2) { v = $(i + 1); sub(/,$/, "", v); if ($i != "resume") pause += v }
			n++; p[n] = pause; sp += pages; sb += blocks; if (blocks > mb) mb = blocks
		}
		END {
			if (n == 0) { print "RESULT " name " epochs none"; exit }
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (p[j] < p[i]) { x = p[i]; p[i] = p[j]; p[j] = x }
			k = int(n * 0.99) + 1
			if (k > n) k = n
			printf "RESULT %s pause_p50 %.1f\nRESULT %s pause_p99 %.1f\nRESULT %s pause_max %.1f\n", name, p[int(n / 2) + 1], name, p[k], name, p[n]
			printf "RESULT %s pages_mean %.0f\nRESULT %s blocks_mean %.1f\nRESULT %s blocks_max %d\n", name, sp / n, name, sb / n, name, mb
		}'
	echo "RESULT $name epochs $epochs"
	# A guest the emulator killed during the arm (docs/testing.md, "A Linux guest") stops the epochs: say so.
	echo "RESULT $name state $(echo "$s1" | sed -n 's/.*"state": *"\([a-z-]*\)".*/\1/p' | head -n 1)"
	[ "$epochs" -gt 0 ] && echo "RESULT $name stored_per_epoch $((stored / epochs))"
	rm -rf "$store"
}

arm idle ""
arm busy "diskcheck=on"
