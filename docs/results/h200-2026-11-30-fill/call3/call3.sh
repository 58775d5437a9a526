#!/usr/bin/env bash
# Call 3 of issue 10 (helper fill): the final build through the Rust path.
set -uo pipefail
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv > $OUT/smi.txt 2>&1
{ time bin/cumemlab selftest --quiet; echo "rc=$?"; } > $OUT/selftest.txt 2>&1; cat $OUT/selftest.txt
{ time bin/cumemlab selftest --quiet; echo "rc=$?"; } > $OUT/selftest-2.txt 2>&1; grep -A6 "by size" $OUT/selftest-2.txt; tail -5 $OUT/selftest-2.txt
bin/cumemlab selftest --json --quiet --runs 20 > $OUT/selftest.json 2>&1; echo "selftest json rc=$?"
# The test binaries run the tool from the path they were built with.
mkdir -p /work/wt-fill/target/release && cp bin/cumemlab /work/wt-fill/target/release/cumemlab
{ CUMEMLAB_REQUIRE_GPU=1 bin/gpu_foundation; echo "rc=$?"; CUMEMLAB_REQUIRE_GPU=1 bin/gpu_fill_variants --include-ignored --nocapture --test-threads 1; echo "rc=$?"; } > $OUT/tests.log 2>&1
grep -E "^test |test result|rc=|production|cuMemsetD32:" $OUT/tests.log
