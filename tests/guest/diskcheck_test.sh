#!/bin/bash
# diskcheck on the host, in a temporary directory: rounds of changes read back clean (exit 0, bad=0 on every line),
# and a file changed behind its model's back is reported (exit 1, a DISKCHECK-BAD line naming it).
set -euo pipefail
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$bin" --keep-caches --dir "$tmp/d" --rounds 6 --interval-ms 0 --files 16 --max-file-kib 64 >"$tmp/clean.out" ||
	fail "clean run exited $?: $(cat "$tmp/clean.out")"
[ "$(grep -c '^DISKCHECK round=.* bad=0 ' "$tmp/clean.out")" = 6 ] || fail "not six clean rounds: $(cat "$tmp/clean.out")"
grep -q 'total_bad=0' "$tmp/clean.out" || fail "total_bad not 0"
grep -q '^DISKCHECK round=6 .* files=[1-9]' "$tmp/clean.out" || fail "no files by round 6"

# A second run wipes what the first left and starts again.
"$bin" --keep-caches --dir "$tmp/d" --rounds 1 --interval-ms 0 >/dev/null || fail "a run over a used directory failed"

status=0
"$bin" --keep-caches --dir "$tmp/d" --rounds 3 --interval-ms 0 --inject >"$tmp/inject.out" || status=$?
[ "$status" = 1 ] || fail "injected run exited $status, want 1: $(cat "$tmp/inject.out")"
file=$(sed -n 's/^DISKCHECK-INJECT round=2 file=\([^ ]*\)$/\1/p' "$tmp/inject.out")
[ -n "$file" ] || fail "no injection line"
grep -q "^DISKCHECK-BAD round=2 file=$file problem=size" "$tmp/inject.out" || fail "the damaged file was not reported: $(cat "$tmp/inject.out")"
grep -q '^DISKCHECK round=3 bad=0 ' "$tmp/inject.out" || fail "the damage was reported again in round 3"

if "$bin" --keep-caches --dir / --rounds 1 2>/dev/null; then fail "--dir / accepted"; fi
echo "PASS: diskcheck"
