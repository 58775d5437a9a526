#!/usr/bin/env bash
# Call 2 of issue 10 (helper fill): bench experiments + the Rust path.
set -uo pipefail
B=/tmp/fb
nvcc -O3 -std=c++17 -arch=sm_90 -o $B scripts/fill-bench.cu -lcuda || exit 1
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv; $B scrub; } > $OUT/scrub.log 2>&1
grep -E "scrubsum" $OUT/scrub.log
$B gap 12 cml_fill:1024:full > $OUT/gap2.log 2>&1
grep -E "gapseries.*(gridstride|memset)" $OUT/gap2.log | sed -E 's/,[0-9]+(,[0-9]+){6,}//' | cut -c1-150
$B confirm 1,4,16 30 cml_fill:1024:full gridstride4:256:128 cml_fill:256:full tiles1:256:full > $OUT/confirm2.log 2>&1; cat $OUT/confirm2.log
ncu --clock-control none --metrics gpu__time_duration.sum,dram__bytes_write.sum,dram__bytes_read.sum,dram__bytes_write.sum.per_second,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size,launch__block_size $B ncu cml_fill:1024:full gridstride4:256:128 > $OUT/ncu2.log 2>&1
grep -E "^  [a-zA-Z_].*\(|dram__bytes_write.sum.per|dram__throughput" $OUT/ncu2.log
{ time bin/cumemlab selftest --quiet; echo "rc=$?"; } > $OUT/selftest.txt 2>&1; cat $OUT/selftest.txt
bin/cumemlab selftest --json --quiet --fill-sizes 1GiB,4GiB,16GiB --runs 20 > $OUT/selftest.json 2>&1; echo "selftest json rc=$?"
bin/cumemlab selftest --fill-sizes 100GiB --quiet; echo "bad fill size rc=$?"
{ CUMEMLAB_REQUIRE_GPU=1 bin/gpu_foundation; echo "rc=$?"; CUMEMLAB_REQUIRE_GPU=1 bin/gpu_fill_variants --include-ignored --nocapture --test-threads 1; echo "rc=$?"; } > $OUT/tests.log 2>&1
grep -E "^test |test result|rc=|production|cuMemsetD32:" $OUT/tests.log
{ timeout 150 bin/cumemlab sweep --sizes 16GiB,37312528384B --strategies device,pool,vmm --runs 5 --quiet --csv; echo "rc=$?"; } > $OUT/sweep.txt 2>&1
grep -E ",fill,|,baseline_cuMemsetD32,|rc=" $OUT/sweep.txt | cut -d, -f2-10
