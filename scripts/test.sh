#!/usr/bin/env bash
# The README's test command (after scripts/install-cuda-toolkit.sh): `cargo test`, with every
# skipped test recorded, and the count printed as
#   GPU tests skipped: N of M (<count> x <reason>; ...)
#   Other tests skipped: K (...)
# GPU tests run at cargo's default parallelism: they share the card through the lock in
# tests/common/mod.rs. CUMEMLAB_REQUIRE_GPU=1 makes a GPU test without a GPU fail (as with plain
# cargo test).
#
# With no arguments the unit and integration tests run first, then the counts are printed, then
# the doc tests run, so cargo's own `test result:` lines still close the output. With arguments,
# `cargo test ARGS...` runs once and the counts follow it.
# The record of a run is target/test-skips/<UTC time>-<pid>.log ($CARGO_TARGET_DIR is honoured).
# Exit code: cargo's.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
target=${CARGO_TARGET_DIR:-$repo/target}
mkdir -p "$target/test-skips"
export CUMEMLAB_TEST_SKIP_LOG="$target/test-skips/$(date -u +%Y%m%dT%H%M%SZ)-$$.log"
: >"$CUMEMLAB_TEST_SKIP_LOG"

if [ $# -gt 0 ]; then
  cargo test "$@"
  rc=$?
  scripts/test-skips.sh "$CUMEMLAB_TEST_SKIP_LOG"
  exit $rc
fi
cargo test --lib --bins --tests
rc=$?
scripts/test-skips.sh "$CUMEMLAB_TEST_SKIP_LOG"
[ $rc -eq 0 ] || exit $rc
cargo test --doc
