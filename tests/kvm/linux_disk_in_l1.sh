#!/bin/sh
# Runs inside the nested-KVM harness's guest (busybox sh; tests/kvm/linux_disk_test.sh starts it): ckptd boots a
# Linux guest with a disk; its init mounts the disk's ext4 file system and runs diskcheck, which changes files
# (create + fsync + rename, append, rename, remove, each name change followed by a directory fsync) and reads them
# all back from the disk every round against the model it keeps in memory (tests/guest/diskcheck.cpp).
#
# Then, DISK_KILLS times: let the guest run a random 2-5 s, kill -9 ckptd, resume it. Before the resume, the disk
# of the newest epoch (the one the resume continues from) is written out offline (`ckpt restore --disk 0 --to`) and
# must be a clean file system once its journal is replayed, as after a power cut (e2fsck -E journal_only, then
# e2fsck -fn). After the resume the guest continues from that epoch with memory and disk both from it: the first
# diskcheck round must find every file its model names, with the model's size and bytes, and no other (bad=0),
# with the same boot id (the guest did not reboot). Last, a live `ckpt restore` of an older epoch (taken four
# kills before the end) must give the same; at shutdown the final epoch, rebuilt into a fresh VM, must equal the
# paused guest's memory and disk (--verify-final). A run whose guest died or got stuck on its own (the nested
# emulator's defect, docs/testing.md "A Linux guest"), as L1's trace shows, runs again, up to MAX_ATTEMPTS in all.
# Last line: "linux_disk: N passed, M failed".
set -u

CKPTD=/harness/ckptd
CKPT=/harness/ckpt
KERNEL=/harness/guest/vmlinux
INITRD=/harness/guest/initrd.cpio
DISK=/harness/guest/disk.img
E2FSCK=/harness/bin/e2fsck
CMDLINE="console=ttyS0 quiet panic=-1 reboot=t memcheck=off diskcheck=on diskcheck.interval_ms=1000"
BOOT_TIMEOUT=${BOOT_TIMEOUT:-150}
KILLS=${DISK_KILLS:-20}
# The store lives in L1's memory, on a 1 GiB tmpfs: 226 epochs took 950 MiB there (a rebase every 17 epochs or so
# writes a base of memory and disk), so the default of 1000 would fill it in a long run.
KEEP_LAST=100

# The store on a file system of its own, so that the test can fill it up (check_full_store).
STOREFS=/tmp/storefs
store=$STOREFS/store
log=/tmp/ckptd-disk.log
sock=/tmp/ckptd-disk.sock

# shellcheck source=tests/kvm/l1_lib.sh
. /harness/bin/l1_lib.sh

# Complete diskcheck lines only (console.log is read while ckptd appends to it).
LINE='DISKCHECK round=.* total_bad=[0-9]* ms=[0-9]'
lines() { console_text | grep -o "$LINE.*"; }
line_count() { lines | wc -l; }

start_daemon() { # start_daemon ARGS...
	"$CKPTD" --backend kvm --vcpus 2 --memory-mib 256 --epoch-ms 500 --store "$store" --socket "$sock" \
		--kernel "$KERNEL" --initrd "$INITRD" --cmdline "$CMDLINE" --log-level warn --verify-final \
		--retention-keep-last "$KEEP_LAST" "$@" \
		>>"$log" 2>&1 &
	daemon_pid=$!
	local t=0
	until "$CKPT" --socket "$sock" status --brief >/dev/null 2>&1; do
		if ! kill -0 "$daemon_pid" 2>/dev/null || [ $t -ge 120 ]; then
			echo "ckptd did not come up:"
			tail -n 20 "$log"
			return 1
		fi
		sleep 1
		t=$((t + 1))
	done
}

marks() { console_text | grep -c '^\[ckptd: the guest continues from epoch [0-9]*\]$'; }
# The console after the last restore mark.
after_last_mark() {
	console_text | awk '/^\[ckptd: the guest continues from epoch [0-9]*\]$/ { n = NR; out = "" } n { out = out $0 "\n" } END { printf "%s", out }'
}

# check_restored WHAT MARKS_BEFORE: the first diskcheck line after the next restore mark is clean and continues.
check_restored() {
	local what=$1 before=$2 line="" t=0
	while :; do
		[ "$(marks)" -gt "$before" ] && line=$(after_last_mark | grep -o "$LINE.*" | head -n 1)
		[ -n "$line" ] && break
		if [ $t -ge 120 ] || guest_stopped; then
			bad "$what: no diskcheck line after the restore mark (waited $t s); console since:"
			after_last_mark | tail -n 15
			return 1
		fi
		sleep 1
		t=$((t + 1))
	done
	local epoch
	epoch=$(console_text | sed -n 's/^\[ckptd: the guest continues from epoch \([0-9]*\)\]$/\1/p' | tail -n 1)
	if [ "$(field boot "$line")" != "$boot_id" ]; then bad "$what: the guest rebooted: $line"; return 1; fi
	if [ "$(field bad "$line")" != 0 ]; then
		bad "$what (epoch $epoch): the disk and the guest's memory disagree: $line"
		after_last_mark | grep 'DISKCHECK-BAD' | head -n 8
		return 1
	fi
	if after_last_mark | grep -q 'CKPT-GUEST: init\|DISKCHECK-START'; then bad "$what: the guest started again"; return 1; fi
	ok "$what: from epoch $epoch, round $(field round "$line"): every file as the guest's memory says ($(field files "$line") files, $(field bytes "$line") bytes)"
}

# check_fsck WHAT: the newest epoch's disk, written out offline, is a clean ext4 once its journal is replayed.
check_fsck() {
	local out epoch rc
	rm -f /tmp/fsck.img
	if ! out=$("$CKPT" restore --store "$store" --disk 0 --to /tmp/fsck.img 2>&1); then
		bad "$1: ckpt restore --disk 0 --to: $out"
		return 1
	fi
	epoch=$(echo "$out" | sed -n 's/^restored disk 0 ([^)]*) of epoch \([0-9]*\) .*/\1/p')
	out=$("$E2FSCK" -E journal_only -y /tmp/fsck.img 2>&1)
	rc=$?
	if [ $rc -ge 4 ]; then bad "$1: e2fsck could not replay the journal of epoch $epoch's disk (status $rc): $out"; return 1; fi
	out=$("$E2FSCK" -fn /tmp/fsck.img 2>&1)
	rc=$?
	rm -f /tmp/fsck.img
	if [ $rc -ne 0 ]; then
		bad "$1: e2fsck -fn of epoch $epoch's disk found errors (status $rc):"
		echo "$out" | tail -n 15
		return 1
	fi
	ok "$1: epoch $epoch's disk is a clean ext4 after its journal replay"
}

# check_full_store: the store's file system fills up (a filler file takes every free byte). Epochs fail, and what
# the guest writes to memory and disk meanwhile is owed to the next epoch; the daemon and the guest run on. Once
# there is space again an epoch commits everything owed, and a kill -9 right after must resume to a guest whose
# disk agrees with its memory, with a clean file system on the disk.
check_full_store() {
	local image=$store/disk0.img size_kib used_kib failed0 failed=0 owed=0 owed_max=0 committed t=0
	# The working image is a copy of a file without holes, so the guest's own writes need no new space (on a full
	# file system a write into a hole of the sparse working image fails: docs/operations.md "Disks").
	size_kib=$(($(wc -c <"$image") / 1024))
	used_kib=$(du -k "$image" | cut -f1)
	if [ "$used_kib" -lt "$size_kib" ]; then bad "full store: the working image has holes ($used_kib of $size_kib KiB)"; return 1; fi
	failed0=$(status_number epochs_failed)
	failed0=${failed0:-0}
	dd if=/dev/zero of="$STOREFS/filler" bs=64k 2>/dev/null
	echo "full store: $(df -k "$STOREFS" | tail -n 1)"
	while [ $t -lt 60 ]; do
		failed=$(status_number epochs_failed)
		failed=$((${failed:-0} - failed0))
		owed=$(status_number owed_disk_blocks)
		[ "${owed:-0}" -gt "$owed_max" ] && owed_max=$owed
		[ "$failed" -ge 4 ] && [ "$owed_max" -gt 0 ] && break
		sleep 1
		t=$((t + 1))
	done
	if [ "$failed" -lt 4 ] || [ "$owed_max" -eq 0 ]; then
		rm -f "$STOREFS/filler"
		bad "full store: after $t s, $failed epochs failed and at most $owed_max disk blocks were owed (want 4 and some)"
		"$CKPT" --socket "$sock" status | tail -n 8
		return 1
	fi
	ok "full store: $failed epochs failed (ENOSPC), up to $owed_max disk blocks owed; the daemon ran on"
	committed=$(status_number epochs_committed)
	committed=${committed:-0}
	rm -f "$STOREFS/filler"
	t=0
	until [ "$(status_number epochs_committed)" -gt "$committed" ] && [ "$(status_number owed_disk_blocks)" = 0 ] &&
		[ "$(status_number owed_pages)" = 0 ]; do
		if [ $t -ge 60 ]; then
			bad "full store: $t s after space came back, what was owed is still not committed:"
			"$CKPT" --socket "$sock" status | tail -n 8
			return 1
		fi
		sleep 1
		t=$((t + 1))
	done
	ok "full store: space back, an epoch committed everything owed"
	kill -9 "$daemon_pid"
	wait "$daemon_pid" 2>/dev/null
	check_fsck "kill -9 after the full store" || return 1
	local m
	m=$(marks)
	start_daemon --resume || { bad "full store: ckptd --resume did not start"; return 1; }
	check_restored "kill -9 after the full store + --resume" "$m"
}

# take_snapshot TAG: commits an epoch now and prints its number.
take_snapshot() { "$CKPT" --socket "$sock" snapshot --tag "$1" | sed -n 's/^epoch \([0-9]*\) committed.*/\1/p'; }

run_once() {
	rm -rf "$store" "$log" "$STOREFS/filler"
	start_daemon --disk "$DISK" || { bad "ckptd did not start"; return; }
	t0=$(date +%s)
	t=0
	while [ "$(line_count)" -lt 2 ]; do
		if [ $t -ge "$BOOT_TIMEOUT" ] || console_text | grep -q 'CKPT-GUEST: disk.*failed\|did not appear' ||
			guest_stopped; then
			bad "no second diskcheck round within $t s of boot; console:"
			console_text | tail -n 25
			tail -n 10 "$log"
			return
		fi
		sleep 1
		t=$((t + 1))
	done
	first=$(lines | sed -n 2p)
	boot_id=$(field boot "$first")
	ok "booted, mounted the disk and ran diskcheck in $(($(date +%s) - t0)) s (indicative): $first"
	check_full_store || return
	# The epoch the live restore goes back to: a few kills before the end, so that retention keeps it.
	older_at=$((KILLS > 4 ? KILLS - 4 : 1))
	older=""

	i=1
	while [ $i -le "$KILLS" ]; do
		[ $i -eq "$older_at" ] && older=$(take_snapshot older)
		sleep $((2 + RANDOM % 4))
		kill -9 "$daemon_pid"
		wait "$daemon_pid" 2>/dev/null
		check_fsck "kill -9 $i of $KILLS"
		m=$(marks)
		start_daemon --resume || { bad "kill $i: ckptd --resume did not start"; break; }
		check_restored "kill -9 $i of $KILLS + --resume" "$m" || break
		i=$((i + 1))
	done

	[ -n "$older" ] || older=$(take_snapshot older)
	m=$(marks)
	if [ -z "$older" ]; then
		bad "no epoch to restore live: the snapshot of the older epoch failed"
	elif out=$("$CKPT" --socket "$sock" restore "$older" 2>&1); then
		check_restored "live restore of the older epoch $older" "$m"
	else
		bad "ckpt restore $older: $out"
		echo "the store's epochs now (oldest and newest):"
		"$CKPT" --socket "$sock" list 2>&1 | sed -n '1,4p;$p'
	fi
	status=$("$CKPT" --socket "$sock" status)
	echo "$status" | grep -i 'disk\|store\|chain' | sed 's/^/status: /'
	if console_text | grep -q 'DISKCHECK-BAD\|CKPT-GUEST: diskcheck exited'; then
		bad "diskcheck reported a problem somewhere in the console log:"
		console_text | grep 'DISKCHECK-BAD\|CKPT-GUEST: diskcheck exited' | head -n 5
	else
		ok "no diskcheck round in the whole console log found a wrong file"
	fi
	# --verify-final: the daemon rebuilds a VM from the final epoch and compares its memory and disk with the
	# paused guest's; it exits 1 if they differ.
	if ! "$CKPT" --socket "$sock" shutdown --wait --timeout 300 >/dev/null 2>&1; then
		bad "shutdown failed"
		kill -9 "$daemon_pid" 2>/dev/null # or the wait below would wait for good
	fi
	wait "$daemon_pid"
	rc=$?
	if [ $rc -eq 0 ]; then
		ok "the final epoch rebuilt into a fresh VM equals the guest: memory and disk (verify-final)"
	else
		bad "ckptd exited $rc at shutdown (verify-final):"
		tail -n 5 "$log"
	fi
	if "$CKPT" verify --store "$store" >/dev/null 2>&1; then ok "the store verifies"; else bad "verify"; fi
}

mkdir -p "$STOREFS"
mount -t tmpfs -o size=1g tmpfs "$STOREFS" || { echo "linux_disk: cannot mount a tmpfs on $STOREFS"; exit 1; }
attempts linux_disk run_once
summary linux_disk
