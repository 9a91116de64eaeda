#!/bin/bash
# ckpt console's error paths (docs/cli.md, "console"): no daemon 3, bad flags 2, --attach without a terminal 2, and
# a real ckptd whose guest has no console (the built-in guests; software backend) 4. The console's data path is
# tested in-process (tests/daemon/console_test.cpp); against a Linux guest it needs the nested KVM.
# Usage: console_cli_test.sh BUILD_DIR. Exits 77 (skipped) where the kernel lacks what the software backend needs.
set -uo pipefail
build=$1
ckptd=$build/daemon/ckptd
ckpt=$build/cli/ckpt
dir=$(mktemp -d)
daemon_pid=""
failures=0

cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$daemon_pid" 2>/dev/null
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

expect_rc() {  # expect_rc WANT DESCRIPTION -- command...   (stdout in $dir/out, stderr in $dir/err)
  local want=$1 what=$2
  shift 3
  "$@" >"$dir/out" 2>"$dir/err" </dev/null
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL: $what: exit $rc, want $want"; sed 's/^/  | /' "$dir/out" "$dir/err"; failures=$((failures + 1))
  else
    echo "ok: $what (exit $rc)"
  fi
}
expect_text() {  # expect_text FILE PATTERN DESCRIPTION
  if grep -qE -- "$2" "$1"; then echo "ok: $3"; else echo "FAIL: $3: no /$2/ in:"; sed 's/^/  | /' "$1"; failures=$((failures + 1)); fi
}

sock=$dir/ckptd.sock
expect_rc 3 "no daemon" -- "$ckpt" --socket "$sock" console
expect_text "$dir/err" "ckptd is not running" "no daemon: says so"
expect_rc 3 "no daemon, --follow" -- "$ckpt" --socket "$sock" console --follow
expect_rc 3 "no daemon, --json" -- "$ckpt" --socket "$sock" console --json
expect_text "$dir/out" '"code": "unreachable"' "no daemon, --json: an error object on stdout"
expect_rc 2 "--attach with stdin not a terminal" -- "$ckpt" --socket "$sock" console --attach
expect_text "$dir/err" "needs a terminal on stdin" "--attach without a terminal: says why"
expect_rc 2 "--attach --json" -- "$ckpt" --socket "$sock" console --attach --json
expect_rc 2 "--attach --follow" -- "$ckpt" --socket "$sock" console --attach --follow
expect_rc 2 "an unknown flag" -- "$ckpt" --socket "$sock" console --bogus
expect_rc 2 "an argument" -- "$ckpt" --socket "$sock" console 42
expect_rc 0 "--help" -- "$ckpt" console --help
expect_text "$dir/out" "Ctrl-\]" "--help names the detach key"

# A real daemon whose guest has no console.
"$ckptd" --store "$dir/store" --socket "$sock" --backend software --memory-mib 16 --epoch-ms 100 \
  >"$dir/ckptd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
  [ -S "$sock" ] && break
  if ! kill -0 "$daemon_pid" 2>/dev/null; then
    grep -q "unsupported" "$dir/ckptd.log" && { echo "SKIP: no software backend on this kernel"; exit 77; }
    echo "FAIL: ckptd did not start"; cat "$dir/ckptd.log"; exit 1
  fi
  sleep 0.1
done
expect_rc 4 "a guest without a console" -- "$ckpt" --socket "$sock" console
expect_text "$dir/err" "this guest has no console" "no console: says so"
expect_rc 4 "a guest without a console, --follow" -- "$ckpt" --socket "$sock" console --follow
expect_rc 4 "a guest without a console, --json" -- "$ckpt" --socket "$sock" console --json
expect_text "$dir/out" '"code": "not_found"' "no console, --json: not_found on stdout"
# The terminal check comes first: no terminal, no attach, whatever the guest.
expect_rc 2 "--attach without a terminal, daemon running" -- "$ckpt" --socket "$sock" console --attach
if command -v script >/dev/null; then
  # On a pseudo-terminal, --attach asks the daemon before touching the terminal: not_found, terminal untouched.
  script -qec "$ckpt --socket $sock console --attach" /dev/null >"$dir/out" 2>&1 </dev/null
  rc=$?
  [ "$rc" -eq 4 ] && echo "ok: --attach on a terminal, no console (exit 4)" || {
    echo "FAIL: --attach on a pty: exit $rc, want 4"; sed 's/^/  | /' "$dir/out"; failures=$((failures + 1)); }
fi
"$ckpt" --socket "$sock" shutdown --wait >/dev/null 2>&1

if [ "$failures" -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "all console CLI checks passed"
