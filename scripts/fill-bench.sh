#!/usr/bin/env bash
# Issue 10 on a GPU host: builds scripts/fill-bench.cu, sweeps the fill variants, confirms the
# best shapes interleaved with cuMemsetD32, runs the 34.8 GiB allocation-gap experiment and reads
# DRAM throughput with ncu. Logs go to ${OUT:-out}.
set -uo pipefail
OUT=${OUT:-out}; mkdir -p "$OUT"
nvcc -O3 -std=c++17 -arch=sm_90 -o /tmp/fill-bench scripts/fill-bench.cu -lcuda || exit 1
B=/tmp/fill-bench
{ nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv; nvidia-smi -q -d CLOCK; } > "$OUT/clocks-before.txt" 2>&1
$B sweep ${SIZES:-1 4 16} > "$OUT/sweep.log" 2>&1 || echo "sweep failed rc=$?"
python3 scripts/fill-bench-summary.py "$OUT/sweep.log" | tee "$OUT/summary.txt"
TOP=$(python3 scripts/fill-bench-summary.py "$OUT/sweep.log" --pick 5)
echo "top: $TOP"
$B confirm 1,4,16 30 gridstride4:256:128 $TOP > "$OUT/confirm.log" 2>&1 || echo "confirm failed"
cat "$OUT/confirm.log"
WIN=${TOP%% *}
$B gap 12 "$WIN" > "$OUT/gap.log" 2>&1 || echo "gap failed"
grep -E "gap:|gapalloc|median|afterfree" "$OUT/gap.log" | sed -E 's/,[0-9]+(,[0-9]+){6,}/,.../' | cut -c1-220
{ nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv; nvidia-smi -q -d CLOCK; } > "$OUT/clocks-after.txt" 2>&1
ncu --clock-control none --metrics gpu__time_duration.sum,dram__bytes_write.sum,dram__bytes_read.sum,dram__bytes_write.sum.per_second,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size,launch__block_size \
  $B ncu gridstride4:256:128 $(echo $TOP | cut -d' ' -f1-2) > "$OUT/ncu.log" 2>&1 || echo "ncu failed"
grep -E "^  [a-zA-Z_].*\(|dram__|gpu__time|launch__|ncu-run|==ERR|==WARN" "$OUT/ncu.log" | head -60
