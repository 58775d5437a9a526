#!/usr/bin/env bash
# The GPU-host runner of target/gpu-bundle (copied there as run.sh by scripts/gpu-bundle.sh).
# Usage: target/gpu-bundle/run.sh [STEP...]; steps run in the order given:
#   tests      every test executable with CUMEMLAB_REQUIRE_GPU=1, at the default parallelism as
#              the README's `scripts/test.sh` runs them (GPU tests take turns through the lock in
#              tests/common), then the skip count (test-skips.sh); tests=A,B runs only those
#   sanitize   compute-sanitizer memcheck (leak check), racecheck, initcheck on the kernel tests
#   selftest   cumemlab selftest (table and JSON)
#   info       cumemlab info (table and JSON)
#   sweep      the default cumemlab sweep (table, JSON)
#   interrupt  scripts/interrupt-test.sh: SIGINT/SIGKILL at several moments of real runs
#   concurrent scripts/concurrent-probes.sh: two probes at once on one GPU
#   sanitize-sweep  a short sweep of every strategy under memcheck, racecheck and initcheck
#   CMD:ARGS   any other cumemlab subcommand, e.g. "probe:--strategies device,managed"
# Every step's output goes to <work>/<step>.log (result files beside it, under $RESULTS inside
# step arguments); at the end everything is packed into $OUT/results.tgz (the device tool returns
# at most 8 files). The exit code is non-zero when any step failed.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
final=${OUT:-/tmp/cumemlab-out}
# Work outside $OUT and re-pack after every step: a run stopped at its time limit still returns
# everything finished so far, in one file.
work=$(mktemp -d /tmp/cumemlab-run.XXXXXX)
out="$work/results"
mkdir -p "$out" "$final"
export RESULTS="$out"
export CARGO_MANIFEST_DIR="$repo" CUMEMLAB_BIN="$here/cumemlab" CUMEMLAB_REQUIRE_GPU=1
# Every skip of the test executables lands here (tests/common/mod.rs); test-skips.sh counts them.
export CUMEMLAB_TEST_SKIP_LOG="$out/test-skips.record"
bin="$here/cumemlab"
status=0
[ $# -gt 0 ] || set -- tests sanitize selftest

step() { # name, command...
  local name=$1; shift
  echo "=== $name: $*"
  local t0=$SECONDS
  "$@" >"$out/$name.log" 2>&1
  local rc=$?
  tail -n 60 "$out/$name.log"
  echo "=== $name: exit $rc after $((SECONDS - t0)) s"
  [ $rc -eq 0 ] || status=1
  tar czf "$final/results.tgz" -C "$work" results
}

nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv 2>&1 | sed 's/^/nvidia-smi: /'
for s in "$@"; do
  case "$s" in
    tests|tests=*)
      # tests=NAME,NAME runs only those test executables.
      only=${s#tests}; only=${only#=}
      for t in "$here"/tests/*; do
        n=$(basename "$t")
        if [ -n "$only" ] && ! printf ',%s,' "$only" | grep -q ",$n,"; then continue; fi
        step "test-$n" "$t" --nocapture
      done
      step test-skips "$here/test-skips.sh" "$CUMEMLAB_TEST_SKIP_LOG" ;;
    sanitize)
      if ! command -v compute-sanitizer >/dev/null; then echo "compute-sanitizer not found"; status=1; continue; fi
      kt="$here/tests/gpu_foundation"
      export CUMEMLAB_TEST_BYTES=$((64 << 20))  # sanitizers slow kernels down 10-100x
      for tool in "memcheck --leak-check full" racecheck initcheck; do
        # shellcheck disable=SC2086
        # The out-of-memory test provokes an API error on purpose, which memcheck would report.
        step "sanitize-${tool%% *}" compute-sanitizer --tool $tool --error-exitcode 99 "$kt" --test-threads=1 \
          --skip impossible_allocation
      done
      unset CUMEMLAB_TEST_BYTES ;;
    selftest)
      step selftest "$bin" selftest
      "$bin" selftest --json --quiet >"$out/selftest.json" 2>>"$out/selftest.log" || status=1 ;;
    info)
      step info "$bin" info
      "$bin" info --json >"$out/info.json" 2>>"$out/info.log" || status=1 ;;
    sweep)
      step sweep "$bin" sweep --out "$out/sweep.json" ;;
    interrupt)
      step interrupt "$here/interrupt-test.sh" "$bin" "$out/interrupt" ;;
    concurrent)
      step concurrent "$here/concurrent-probes.sh" "$bin" "$out/concurrent" ;;
    sanitize-sweep)
      for tool in "memcheck --leak-check full" racecheck initcheck; do
        # shellcheck disable=SC2086
        step "sanitize-sweep-${tool%% *}" compute-sanitizer --tool $tool --error-exitcode 99 \
          "$bin" sweep --strategies device,managed,pinned,registered,pool,vmm --sizes 64MiB --runs 1 --quiet
      done ;;
    *:*)
      cmd=${s%%:*}; args=${s#*:}
      # Steps may name $RESULTS in their arguments (single-quoted by the caller).
      args=${args//\$RESULTS/$out}
      name=$cmd; n=1
      while [ -e "$out/$name.log" ]; do n=$((n + 1)); name="$cmd-$n"; done
      # shellcheck disable=SC2086
      step "$name" "$bin" "$cmd" $args ;;
    *)
      step "$s" "$bin" "$s" ;;
  esac
done
tar czf "$final/results.tgz" -C "$work" results && rm -rf "$work"
echo "=== all steps done, status $status; results in $final/results.tgz"
exit $status
