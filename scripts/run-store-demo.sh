#!/bin/bash
# The main job for now (`make run`): ckptd checkpoints a 256 MiB VM (KVM, else the software backend) every 100 ms for 5 s, checks that
# the newest epoch restores bit-exactly, then the ckpt CLI lists, inspects, verifies, restores and compacts the store.
# Usage: scripts/run-store-demo.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
store=$(mktemp -d /var/tmp/ckpt-demo-XXXXXX)
trap 'rm -rf "$store"' EXIT
ckptd=$build/daemon/ckptd
ckpt=$build/cli/ckpt

step() { printf '\n== %s\n' "$*"; }

step "ckptd: a 256 MiB VM, base snapshot, then an epoch every 100 ms for 5 s (store: $store)"
"$ckptd" --store "$store/store" --memory-mib 256 --epoch-ms 100 --duration 5 --tag demo-tag --check

step "ckpt list"
listing=$("$ckpt" list --store "$store/store")
head -n 6 <<<"$listing"; echo "   ..."; tail -n 3 <<<"$listing"

step "ckpt inspect (the whole store)"
"$ckpt" inspect --store "$store/store"

step "ckpt verify (every checksum of every epoch)"
"$ckpt" verify --store "$store/store"

step "ckpt restore --to (the newest epoch as a raw image)"
"$ckpt" restore --store "$store/store" --to "$store/newest.img"

step "ckpt compact --keep-last 10, then verify again"
"$ckpt" compact --store "$store/store" --keep-last 10
"$ckpt" verify --store "$store/store"
"$ckpt" restore --store "$store/store" --to "$store/newest-after-compact.img" >/dev/null
cmp "$store/newest.img" "$store/newest-after-compact.img"
echo "the newest epoch restores to the same bytes before and after compaction"

step "done: all checks passed"
