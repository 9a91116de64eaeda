#!/bin/bash
# Runs a test binary inside a nested KVM and exits with the binary's exit status.
#
# The host needs no /dev/kvm: QEMU emulates (TCG) an AMD CPU with SVM and nested paging (-cpu max), boots Debian's
# stock kernel in it, the guest's init loads kvm_amd and its dependencies, /dev/kvm appears, and the test runs there.
# The kernel .deb is only unpacked (never installed) into a cache, so later runs need neither network nor apt.
# See README.md beside this script for usage, costs and limits.
# shellcheck disable=SC2317 # functions called indirectly (traps, with_apt_lock) are not unreachable
set -Eeuo pipefail
trap 'echo "kvm-harness: error: internal failure at line $LINENO: $BASH_COMMAND" >&2; exit 125' ERR

readonly PROG=kvm-harness
readonly HARNESS_FAILURE=125
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly HOST_PACKAGES=(qemu-system-x86 busybox-static cpio xz-utils zstd kmod)
readonly PROVISION_PACKAGES=(kmod) # --print-kernel-path: depmod only (dpkg-deb and apt are there)
readonly DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
readonly APT_LOCK=/run/lock/ckptd-kvm-harness.apt.lock

usage() {
	cat <<'EOF'
Usage: run-in-nested-kvm.sh [options] -- BINARY [ARGS...]
       run-in-nested-kvm.sh [--kernel-series S] [--cache DIR] [--refresh] --print-kernel-path

Runs BINARY (statically linked x86-64 preferred; a dynamic one gets its libraries copied in) with ARGS inside a
QEMU TCG guest that has kvm_amd loaded, streams its stdout/stderr, and exits with its exit status.
Exit status 125 means the harness failed (setup, boot, module load, timeout); the reason and the end of the
guest console log are printed.

Options (environment variable in brackets):
  --kernel-series S     bookworm (Debian 12 kernel 6.1, default) or backports (bookworm-backports, 6.12)
                        [KVM_HARNESS_KERNEL_SERIES]
  --smp N               guest vCPUs (default 2)                     [KVM_HARNESS_SMP]
  --tcg-thread T        multi (a host thread per guest vCPU, default) or single (one host thread runs them all:
                        slower, but free of multi-threaded TCG's cross-CPU code-patching races, see README)
                        [KVM_HARNESS_TCG_THREAD]
  --builtin-guests      the test runs only ckptd's built-in guests, which cannot take a page fault (identity map,
                        page tables never changed): a page fault L1 traced in one of them (intr_info 0x80000b0e
                        at its shutdown) is the emulator's, and counts as an emulator failure below
                        [KVM_HARNESS_BUILTIN_GUESTS=1]
  --emulator-retries N  runs of a test that failed while the guest kernel oopsed in its int3 handler, found its
                        stack end corrupted or triple-faulted without a word (emulator defects, README) to
                        repeat, saying so (default 3)
                        [KVM_HARNESS_EMULATOR_RETRIES]
  --mem SIZE            guest memory, QEMU syntax (default 1G)      [KVM_HARNESS_MEM]
  --timeout SECONDS     limit for boot + test (default 600)         [KVM_HARNESS_TIMEOUT]
  --cache DIR           kernel cache (default $XDG_CACHE_HOME/ckptd-kvm-harness or ~/.cache/ckptd-kvm-harness)
                        [KVM_HARNESS_CACHE]
  --kvm-amd-params P    parameters for kvm_amd, e.g. "npt=0 nested=1" [KVM_HARNESS_KVM_AMD_PARAMS]
  --kvm-params P        parameters for kvm, e.g. "halt_poll_ns=0"   [KVM_HARNESS_KVM_PARAMS]
  --module NAME         also load module NAME (with its dependencies); repeatable
  --extra-file SRC:DEST copy SRC (file or directory) to DEST in the guest; repeatable
  --env NAME=VALUE      set an environment variable for the test; repeatable
  --append ARGS         extra kernel command line arguments         [KVM_HARNESS_APPEND]
  --cpu MODEL           QEMU CPU model (default max: AuthenticAMD with svm and npt)
  --show-dmesg          print the guest kernel log after the test
  --keep                keep the run's temporary directory (it is always kept on harness failure)
  --refresh             resolve and download the newest kernel of the series again
  --print-kernel-path   provision the series' kernel into the cache (as a run would) and print the path of its
                        vmlinuz; runs nothing (scripts/linux-guest/kernel.sh boots it as a guest)
  -h, --help            this text
EOF
}

log() { echo "$PROG: $*" >&2; }
die() {
	log "error: $*"
	exit "$HARNESS_FAILURE"
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# --- options -----------------------------------------------------------------------------------------------------
series=${KVM_HARNESS_KERNEL_SERIES:-bookworm}
smp=${KVM_HARNESS_SMP:-2}
tcg_thread=${KVM_HARNESS_TCG_THREAD:-multi}
# Three: in CI on 2026-12-07 kvm.daemon_pipeline used its one repeat on an L1 int3 oops and the repeat then lost a
# built-in guest to an emulated page fault; a repeat of a nested test costs 10-40 s.
emulator_retries=${KVM_HARNESS_EMULATOR_RETRIES:-3}
builtin_guests=${KVM_HARNESS_BUILTIN_GUESTS:-0}
mem=${KVM_HARNESS_MEM:-1G}
timeout_s=${KVM_HARNESS_TIMEOUT:-600}
cache=${KVM_HARNESS_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/ckptd-kvm-harness}
kvm_amd_params=${KVM_HARNESS_KVM_AMD_PARAMS:-}
kvm_params=${KVM_HARNESS_KVM_PARAMS:-}
cpu=max
append=${KVM_HARNESS_APPEND:-}
show_dmesg=0
keep=0
refresh=0
print_kernel_path=0
modules=(kvm_amd)
extra_files=()
envs=()

need_arg() { [ $# -ge 2 ] || die "option $1 needs an argument (see --help)"; }
while [ $# -gt 0 ]; do
	opt=$1
	case "$opt" in
	--*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue ;;
	--kernel-series) need_arg "$@"; series=$2; shift 2 ;;
	--smp) need_arg "$@"; smp=$2; shift 2 ;;
	--tcg-thread) need_arg "$@"; tcg_thread=$2; shift 2 ;;
	--emulator-retries) need_arg "$@"; emulator_retries=$2; shift 2 ;;
	--builtin-guests) builtin_guests=1; shift ;;
	--mem) need_arg "$@"; mem=$2; shift 2 ;;
	--timeout) need_arg "$@"; timeout_s=$2; shift 2 ;;
	--cache) need_arg "$@"; cache=$2; shift 2 ;;
	--kvm-amd-params) need_arg "$@"; kvm_amd_params=$2; shift 2 ;;
	--kvm-params) need_arg "$@"; kvm_params=$2; shift 2 ;;
	--module) need_arg "$@"; modules+=("$2"); shift 2 ;;
	--extra-file) need_arg "$@"; extra_files+=("$2"); shift 2 ;;
	--env) need_arg "$@"; envs+=("$2"); shift 2 ;;
	--append) need_arg "$@"; append=$2; shift 2 ;;
	--cpu) need_arg "$@"; cpu=$2; shift 2 ;;
	--show-dmesg) show_dmesg=1; shift ;;
	--keep) keep=1; shift ;;
	--refresh) refresh=1; shift ;;
	--print-kernel-path) print_kernel_path=1; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	-*) die "unknown option $opt (see --help)" ;;
	*) break ;;
	esac
done
if [ "$print_kernel_path" = 1 ]; then
	[ $# -eq 0 ] || die "--print-kernel-path runs no test binary; drop '$1'"
	set -- /dev/null # the binary checks below pass; it is never used
fi
[ $# -ge 1 ] || { usage >&2; die "no test binary given"; }
binary=$1
shift
test_args=("$@")

case "$series" in bookworm | backports) ;; *) die "--kernel-series must be bookworm or backports, not '$series'" ;; esac
[[ "$smp" =~ ^[1-9][0-9]*$ ]] || die "--smp needs a positive integer, not '$smp'"
case "$tcg_thread" in single | multi) ;; *) die "--tcg-thread must be single or multi, not '$tcg_thread'" ;; esac
[[ "$emulator_retries" =~ ^[0-9]+$ ]] || die "--emulator-retries needs a whole number, not '$emulator_retries'"
[[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || die "--timeout needs a positive number of seconds, not '$timeout_s'"
[[ "$mem" =~ ^[1-9][0-9]*[MG]?$ ]] || die "--mem needs a size like 1G or 512M, not '$mem'"
for e in "${envs[@]}"; do [[ "$e" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env needs NAME=VALUE, not '$e'"; done
for f in "${extra_files[@]}"; do
	[[ "$f" == *:/* ]] || die "--extra-file needs SRC:/ABSOLUTE/DEST, not '$f'"
	[ -e "${f%:*}" ] || die "--extra-file source ${f%:*} does not exist"
done
[ "$print_kernel_path" = 1 ] || [ -f "$binary" ] || die "test binary $binary not found"

# --- host packages -------------------------------------------------------------------------------------------------
# Serializes apt among concurrent harness runs (apt's own locks fail instead of waiting).
with_apt_lock() {
	(
		flock -w 1200 9 || die "timed out waiting for $APT_LOCK"
		"$@"
	) 9>"$APT_LOCK"
}

is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

install_packages() {
	local missing=() p
	for p in "$@"; do is_installed "$p" || missing+=("$p"); done # again, under the lock
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing host packages: ${missing[*]}"
	local out
	out=$(mktemp)
	if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$out" 2>&1; then
		cat "$out" >&2
		rm -f "$out"
		die "apt-get install ${missing[*]} failed"
	fi
	rm -f "$out"
}

ensure_host_packages() { # PACKAGE...
	local missing=() p
	for p in "$@"; do is_installed "$p" || missing+=("$p"); done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" = 0 ] || die "missing host packages: ${missing[*]}; install them or run as root"
	with_apt_lock install_packages "${missing[@]}" || exit "$HARNESS_FAILURE" # the reason is printed already
}

# --- kernel cache --------------------------------------------------------------------------------------------------
# Layout: $cache/debs/*.deb, $cache/kernels/<package>_<version>/ (the unpacked .deb plus a generated modules.dep and
# a .harness-ready stamp), $cache/<series> -> kernels/..., $cache/apt-backports/ (private apt state, see below).
# Provisioning holds $cache/lock; trees are made under temporary names and renamed, so a reader never sees a
# partial one and an interrupted run leaves only garbage that the next provisioning removes.

kernel_ready() { [ -f "$1/.harness-ready" ]; }

# The Debian mirror the host's apt already uses: the URI of its bookworm main repository (from its sources, as apt
# itself reads them). Backports comes from the same mirror.
host_debian_mirror() {
	apt-get indextargets --format '$(RELEASE) $(COMPONENT) $(REPO_URI)' 2>/dev/null |
		awk '$1 == "bookworm" && $2 == "main" {print $3; exit}'
}

# The backports kernel comes through a private apt state in the cache: the host's sources stay untouched, and the
# index download (~0.4 MB) happens only when that series is provisioned.
backports_apt_opts() {
	local dir=$cache/apt-backports
	local mirror=${KVM_HARNESS_DEBIAN_MIRROR:-$(host_debian_mirror)}
	[ -n "$mirror" ] || die "the host's apt sources name no bookworm main repository to take bookworm-backports from; set KVM_HARNESS_DEBIAN_MIRROR"
	mkdir -p "$dir/lists/partial" "$dir/archives/partial"
	echo "deb [signed-by=$DEBIAN_KEYRING] $mirror bookworm-backports main" >"$dir/sources.list"
	apt_opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
		-o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir" -o "APT::Sandbox::User=root")
}

# Prints the versioned image package (linux-image-6.1.0-NN-amd64, ...) the linux-image-amd64 metapackage depends on.
resolve_kernel_package() {
	apt-cache "${apt_opts[@]}" depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1 || true
}

update_package_lists() {
	[ "$(id -u)" = 0 ] || die "need root to run apt-get update for the $series kernel"
	log "updating apt package lists for the $series kernel"
	if [ "$series" = backports ]; then
		apt-get "${apt_opts[@]}" update -qq >&2 || die "apt-get update (bookworm-backports) failed"
	else
		with_apt_lock apt-get update -qq >&2 || die "apt-get update failed"
	fi
	lists_updated=1
}

# Downloads the kernel .deb into $cache/debs under a temporary directory, then renames it into place.
download_kernel() {
	local tmp
	mkdir -p "$cache/debs"
	tmp=$(mktemp -d "$cache/debs/.tmp.XXXXXX")
	log "downloading $pkg ($series)"
	if ! (cd "$tmp" && apt-get "${apt_opts[@]}" download -qq "$pkg" >&2); then
		rm -rf "$tmp"
		return 1
	fi
	deb=$(ls "$tmp"/*.deb)
	mv -f "$deb" "$cache/debs/"
	deb=$cache/debs/${deb##*/}
	rmdir "$tmp"
}

provision_kernel() {
	local link=$cache/$series pkg deb tree lists_updated=0
	apt_opts=(-o "APT::Sandbox::User=root")
	[ "$series" = backports ] && backports_apt_opts
	rm -rf "$cache"/kernels/.tmp.* "$cache"/debs/.tmp.*

	# The backports lists live only in the cache, so they are fetched whenever that kernel is provisioned.
	if [ "$series" = backports ] || [ "$refresh" = 1 ]; then update_package_lists; fi
	pkg=$(resolve_kernel_package)
	if [ -z "$pkg" ] && [ "$lists_updated" = 0 ]; then
		update_package_lists
		pkg=$(resolve_kernel_package)
	fi
	[ -n "$pkg" ] || die "cannot resolve the kernel package of linux-image-amd64 for series $series"
	if ! download_kernel; then
		[ "$lists_updated" = 0 ] || die "apt-get download $pkg failed"
		update_package_lists # stale lists name a superseded version
		pkg=$(resolve_kernel_package)
		download_kernel || die "apt-get download $pkg failed"
	fi

	tree=$cache/kernels/$(basename "$deb" .deb)
	if kernel_ready "$tree"; then # --refresh found the version we already have
		log "kernel ${tree##*/} is already unpacked"
	else
		unpack_kernel
	fi
	ln -sfn "kernels/${tree##*/}" "$cache/.tmp.$series.$$"
	mv -T "$cache/.tmp.$series.$$" "$link"
}

# Unpacks $deb into $tree (through a temporary directory) and generates its modules.dep.
unpack_kernel() {
	local tmp kver moddir base
	mkdir -p "$cache/kernels"
	tmp=$(mktemp -d "$cache/kernels/.tmp.XXXXXX")
	log "unpacking ${deb##*/}"
	dpkg-deb -x "$deb" "$tmp" || die "dpkg-deb -x $deb failed"
	kver=$(ls "$tmp"/boot | sed -n 's/^vmlinuz-//p' | head -n1)
	[ -n "$kver" ] || die "no boot/vmlinuz-* in $deb"
	for moddir in lib/modules/$kver usr/lib/modules/$kver; do [ -d "$tmp/$moddir" ] && break; done
	[ -d "$tmp/$moddir" ] || die "no modules directory for $kver in $deb"
	# The .deb ships no modules.dep (its postinst runs depmod); generate it, without touching the host.
	base=${moddir%lib/modules/"$kver"}
	depmod -b "$tmp/$base" "$kver" || die "depmod for $kver failed"
	printf 'kver=%s\nmoddir=%s\npackage=%s\n' "$kver" "$moddir" "$(basename "$deb")" >"$tmp/.harness-ready"
	rm -rf "$tree" # a tree without the ready stamp
	mv -T "$tmp" "$tree"
}

# Sets ktree to a ready, unpacked kernel of the requested series, provisioning it first if needed.
ensure_kernel() {
	local link=$cache/$series
	if [ "$refresh" = 0 ] && kernel_ready "$link"; then
		ktree=$(readlink -f "$link")
		return 0
	fi
	mkdir -p "$cache" || die "cannot create cache directory $cache"
	exec 8>"$cache/lock"
	if ! flock -n 8; then
		log "waiting for another run that is provisioning the kernel cache ($cache/lock)"
		flock -w 1800 8 || die "timed out waiting for the cache lock $cache/lock"
	fi
	if [ "$refresh" = 1 ] || ! kernel_ready "$link"; then provision_kernel; fi
	exec 8>&-
	ktree=$(readlink -f "$link")
	kernel_ready "$ktree" || die "kernel cache $ktree is not usable"
}

stamp_get() { sed -n "s/^$1=//p" "$ktree/.harness-ready"; }

# --- initramfs -----------------------------------------------------------------------------------------------------
# Prints "name path" for every module to load, dependencies first, from modules.dep. Names are normalized (- -> _)
# like the kernel does; modules built into the kernel are skipped.
module_load_order() {
	local moddir=$1
	shift
	awk -v want="$*" '
		function norm(p) { sub(/^.*\//, "", p); sub(/\.ko(\.[a-z]+)?$/, "", p); gsub(/-/, "_", p); return p }
		function visit(m,    n, d, i) {
			if (m in done) return
			if (m in builtin) { done[m] = 1; return }
			if (!(m in path)) { print "MISSING " m; bad = 1; return }
			if (m in active) { print "CYCLE " m; bad = 1; return }
			active[m] = 1
			n = split(deps[m], d, " ")
			for (i = 1; i <= n; i++) visit(d[i])
			done[m] = 1
			print m, path[m]
		}
		FILENAME ~ /modules\.builtin$/ { builtin[norm($1)] = 1; next }
		{
			key = $1; sub(/:$/, "", key); m = norm(key); path[m] = key; deps[m] = ""
			for (i = 2; i <= NF; i++) deps[m] = deps[m] " " norm($i)
		}
		END { n = split(want, w, " "); for (i = 1; i <= n; i++) { x = w[i]; gsub(/-/, "_", x); visit(x) }; exit bad }
	' "$moddir/modules.builtin" "$moddir/modules.dep"
}

# Quotes one word for the guest's busybox sh.
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

copy_shared_libraries() {
	local lib
	for lib in $(ldd "$1" 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' | sort -u); do
		mkdir -p "$rootfs$(dirname "$lib")"
		cp -L "$lib" "$rootfs$lib"
	done
}

# Copies the test binary to /harness/bin; a dynamically linked one brings its shared libraries along.
install_test_binary() {
	local magic
	magic=$(od -An -tx1 -N20 "$binary" | tr -d ' \n')
	case "$magic" in
	7f454c4602* | 23*) ;; # 64-bit ELF, or a "#!" script (its interpreter must exist in the guest)
	*) die "$binary is neither a 64-bit ELF executable nor a script" ;;
	esac
	if [[ "$magic" == 7f454c4602* ]] && [ "${magic:36:4}" != 3e00 ]; then die "$binary is not an x86-64 executable"; fi
	guest_binary=/harness/bin/$(basename "$binary")
	mkdir -p "$rootfs/harness/bin"
	cp "$binary" "$rootfs$guest_binary"
	chmod +x "$rootfs$guest_binary"
	if [[ "$magic" == 7f454c4602* ]] && LC_ALL=C readelf -l "$binary" 2>/dev/null | grep -q 'program interpreter'; then
		log "note: $binary is dynamically linked; copying its shared libraries into the guest"
		copy_shared_libraries "$binary"
	fi
}

# Writes /harness/harness.conf, which the guest init sources; every value is single-quoted for busybox sh.
write_guest_config() {
	local e a
	{
		echo "H_NONCE=$nonce"
		echo "H_OUT=/dev/ttyS1"
		echo "H_REQUIRE_KVM=1"
		printf 'H_MODULES='
		sq "$*"
		echo
		[ -n "$kvm_amd_params" ] && echo "H_PARAMS_kvm_amd=$(sq "$kvm_amd_params")"
		[ -n "$kvm_params" ] && echo "H_PARAMS_kvm=$(sq "$kvm_params")"
		echo "run_test() {"
		for e in "${envs[@]}"; do echo "	export $(sq "$e")"; done
		printf '	%s' "$(sq "$guest_binary")"
		for a in "${test_args[@]}"; do printf ' %s' "$(sq "$a")"; done
		echo
		echo "}"
	} >"$rootfs/harness/harness.conf"
}

build_initramfs() {
	local kver moddir name path names=() spec dest
	kver=$(stamp_get kver)
	moddir=$ktree/$(stamp_get moddir)
	rootfs=$tmp/rootfs
	mkdir -p "$rootfs"/{bin,sbin,dev,proc,sys,tmp,run,etc,harness/modules}
	cp /bin/busybox "$rootfs/bin/busybox"
	cp "$HERE/guest-init.sh" "$rootfs/init"
	chmod +x "$rootfs/init"

	local order
	order=$(module_load_order "$moddir" "${modules[@]}") ||
		die "cannot resolve modules in $moddir: $(grep -E '^(MISSING|CYCLE) ' <<<"$order" | tr '\n' ' ')"
	while read -r name path; do
		case "$path" in
		*.ko) cp "$moddir/$path" "$rootfs/harness/modules/$name.ko" ;;
		*.ko.xz) xz -dc "$moddir/$path" >"$rootfs/harness/modules/$name.ko" ;;
		*.ko.zst) zstd -qdc "$moddir/$path" >"$rootfs/harness/modules/$name.ko" ;;
		*.ko.gz) gzip -dc "$moddir/$path" >"$rootfs/harness/modules/$name.ko" ;;
		*) die "unknown module format $path" ;;
		esac
		names+=("$name")
	done <<<"$order"

	install_test_binary
	for spec in "${extra_files[@]}"; do
		dest=${spec##*:}
		case "$dest" in
		*/) mkdir -p "$rootfs$dest" ;; # DEST/ names a directory to copy into
		*) mkdir -p "$rootfs$(dirname "$dest")" ;;
		esac
		cp -a "${spec%:*}" "$rootfs$dest"
		# A dynamically linked executable (ckptd itself, say) brings its shared libraries, as the test binary does.
		if [ -f "${spec%:*}" ] && LC_ALL=C readelf -l "${spec%:*}" 2>/dev/null | grep -q 'program interpreter'; then
			copy_shared_libraries "${spec%:*}"
		fi
	done
	write_guest_config "${names[@]}"
	# Uncompressed: the guest unpacks it faster than it could decompress anything under TCG.
	(cd "$rootfs" && find . -print0 | cpio --null -o -H newc --quiet) >"$tmp/initramfs.cpio"
	log "kernel $kver ($series), modules: ${names[*]}, smp $smp, mem $mem, cpu $cpu"
}

# --- run -----------------------------------------------------------------------------------------------------------
qpid=""
booted=0
on_signal() {
	[ -z "$qpid" ] || kill -TERM "$qpid" 2>/dev/null || true
	log "interrupted"
	exit "$HARNESS_FAILURE"
}
cleanup() {
	local rc=$?
	[ -z "$qpid" ] || kill -TERM "$qpid" 2>/dev/null || true
	if [ -n "${tmp:-}" ] && [ -d "$tmp" ]; then
		if [ "$keep" = 1 ] || { [ "$rc" = "$HARNESS_FAILURE" ] && [ "$booted" = 1 ]; }; then
			log "run directory kept: $tmp"
		else
			rm -rf "$tmp"
		fi
	fi
}

# The guest init's own lines first (they say how far it got), then the end of the kernel's messages.
print_console_tail() {
	local console
	console=$(tr -d '\r' <"$tmp/console.log")
	if grep -q '^harness-init:' <<<"$console"; then
		log "guest init log:"
		grep '^harness-init:' <<<"$console" | grep -v 'kernel log follows' | sed 's/^/  | /' >&2 || true
	fi
	log "last lines of the guest console ($tmp/console.log):"
	grep -v '^harness-init:' <<<"$console" | tail -n "$1" | sed 's/^/  | /' >&2 || true
	if [ -s "$tmp/qemu.err" ]; then
		log "qemu stderr:"
		sed 's/^/  | /' "$tmp/qemu.err" >&2
	fi
}

fail_run() {
	log "HARNESS FAILURE: $*"
	print_console_tail 40
	exit "$HARNESS_FAILURE"
}

# Boots the guest. The test's channel (ttyS1 -> QEMU stdout) is streamed through a FIFO; the awk filter strips the
# tty's CRs, keeps a raw copy, and moves the harness marker (recognized by this run's nonce) into $tmp/result.
# L1 runs without transparent huge pages: with them, a guest of kvm.linux_guest died (the emulator's page faults,
# README "Limits") in 3 of 4 runs on 2026-12-06, without them in 1 of 4; why is not known. `--append
# transparent_hugepage=always` turns them back on (the last value given wins).
boot_guest() {
	local cmdline="console=ttyS0 loglevel=3 panic=-1 transparent_hugepage=never $append"
	mkfifo "$tmp/out.fifo"
	: >"$tmp/console.log"
	booted=1
	timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 \
		-accel tcg,thread="$tcg_thread" -cpu "$cpu" -smp "$smp" -m "$mem" \
		-nodefaults -no-user-config -display none -no-reboot -d cpu_reset -D "$tmp/qemu.log" \
		-kernel "$ktree/boot/vmlinuz-$(stamp_get kver)" -initrd "$tmp/initramfs.cpio" -append "$cmdline" \
		-serial "file:$tmp/console.log" -serial stdio \
		</dev/null >"$tmp/out.fifo" 2>"$tmp/qemu.err" &
	qpid=$!
	awk -v marker="@@HARNESS-(EXIT|ERROR):$nonce .*@@$" -v result="$tmp/result" -v raw="$tmp/test.out" '
		{
			sub(/\r+$/, "")
			print > raw
			if (match($0, marker)) {
				if (RSTART > 1) { print substr($0, 1, RSTART - 1); fflush() }
				print substr($0, RSTART) > result
				close(result)
				next
			}
			print
			fflush()
		}' <"$tmp/out.fifo" &
	# Waiting with the wait builtin (not a foreground awk) lets a SIGTERM from ctest run on_signal at once.
	apid=$!
	wait "$apid" || true
	qemu_rc=0
	wait "$qpid" || qemu_rc=$?
	qpid=""
}

# The run is void when the emulator, not the test, failed it; emulator_failed says why in $emulator_reason:
# - the guest kernel (L1) oopsed in its int3 handler: its own code patching, broken by TCG's handling of cross-CPU
#   code modification (README, "Limits"). Seen in about one run in four with -smp 2 and a nested guest, and at L1
#   boot before any test ran.
# - the guest kernel (L1) panicked with "corrupted stack end detected inside scheduler": memory corruption seen in an
#   L1 that never ran ckptd (QEMU's own guest under dirty tracking, docs/testing.md "A Linux guest") and in CI in
#   KVM's shutdown path; a test's programs run in user space and cannot write a kernel stack.
# - (--builtin-guests) a built-in guest (L2) shut down while a page fault was being delivered to it: those guests'
#   page tables map all of memory and never change, so no page fault can be theirs; the one seen was at a store into
#   a mapped page with an error code that says "read" (docs/testing.md, "A Linux guest").
# - the guest kernel (L1) triple-faulted: QEMU logged "Triple fault" (-d cpu_reset) and, with -no-reboot, exited
#   with status 0 and no word on L1's console (no panic, oops or BUG). A test's programs cannot do that.
# A test that passed anyway stands.
emulator_failed() {
	local line
	line=$(cat "$tmp/result" 2>/dev/null || true)
	[[ "$line" =~ ^@@HARNESS-EXIT:$nonce\ 0@@$ ]] && return 1
	if grep -q "Oops: int3" "$tmp/console.log"; then
		emulator_reason="the guest kernel oopsed in its int3 handler (code patching under TCG: an emulator defect, not the test's); $(grep -m1 'RIP:' "$tmp/console.log" | tr -d '\r' || true)"
		return 0
	fi
	if grep -q "corrupted stack end detected inside scheduler" "$tmp/console.log"; then
		emulator_reason="the guest kernel panicked: corrupted stack end detected inside scheduler (memory corruption seen in this emulator without ckptd: an emulator defect, not the test's)"
		return 0
	fi
	# A panic's reboot may end in a triple fault too: only a reset without a word from the kernel counts.
	if grep -q '^Triple fault' "$tmp/qemu.log" 2>/dev/null &&
		! grep -q 'Kernel panic\|Oops\|BUG:\|general protection fault\|double fault' "$tmp/console.log"; then
		emulator_reason="the guest kernel triple-faulted (QEMU logged it; no panic or oops on its console): an emulator defect, not the test's"
		return 0
	fi
	if [ "$builtin_guests" = 1 ] && grep -q "L2 guest event traced in L1: .* reason shutdown .* intr_info 0x80000b0e" "$tmp/test.out" 2>/dev/null; then
		emulator_reason="a built-in guest (L2) shut down while a page fault was delivered to it, which its page tables rule out (an emulator defect, not the test's): $(grep -m1 'reason shutdown' "$tmp/test.out" | sed 's/.*kvm_exit: //')"
		return 0
	fi
	return 1
}

report() {
	local line rc reason
	line=$(cat "$tmp/result" 2>/dev/null || true)
	if [[ "$line" =~ ^@@HARNESS-EXIT:$nonce\ ([0-9]+)@@$ ]]; then
		rc=${BASH_REMATCH[1]}
		if [ "$show_dmesg" = 1 ]; then
			log "guest kernel log:"
			tr -d '\r' <"$tmp/console.log" | sed -n '/^harness-init: kernel log follows/,$p' | sed '1d; s/^/  | /' >&2
		fi
		[ "$qemu_rc" = 0 ] || log "warning: qemu exited with status $qemu_rc after the test finished"
		log "test exited with status $rc; boot + test $(elapsed "$t_boot" "$t_end") s, setup $(elapsed "$t_start" "$t_boot") s"
		exit "$rc"
	fi
	if [[ "$line" =~ ^@@HARNESS-ERROR:$nonce\ (.*)@@$ ]]; then
		reason="guest setup failed: ${BASH_REMATCH[1]}"
	elif [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
		reason="timeout: no result after ${timeout_s} s (--timeout)"
	elif [ "$qemu_rc" != 0 ] && ! grep -q "@@HARNESS-INIT:$nonce@@" "$tmp/console.log"; then
		reason="qemu failed (exit status $qemu_rc) before the guest reached init"
	elif ! grep -q "@@HARNESS-INIT:$nonce@@" "$tmp/console.log"; then
		reason="boot failure: the guest kernel never started the harness init"
	elif emulator_failed; then
		reason=$emulator_reason
	else
		reason="the guest stopped before the test finished (kernel panic or crash?), qemu exit status $qemu_rc"
	fi
	fail_run "$reason"
}

t_start=$(now)
command -v apt-get >/dev/null || die "this harness needs a Debian-like host with apt-get"
if [ "$print_kernel_path" = 1 ]; then
	ensure_host_packages "${PROVISION_PACKAGES[@]}"
	ensure_kernel
	echo "$ktree/boot/vmlinuz-$(stamp_get kver)"
	exit 0
fi
ensure_host_packages "${HOST_PACKAGES[@]}"
ensure_kernel
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvm-harness.XXXXXX")
trap cleanup EXIT
trap on_signal INT TERM HUP
nonce=$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')
build_initramfs
attempt=0
while :; do
	t_boot=$(now)
	boot_guest
	t_end=$(now)
	emulator_failed && [ "$attempt" -lt "$emulator_retries" ] || break
	attempt=$((attempt + 1))
	log "$emulator_reason; running the test again ($attempt of $emulator_retries)"
	rm -f "$tmp/out.fifo" "$tmp/result" "$tmp/test.out" "$tmp/qemu.log"
done
report
