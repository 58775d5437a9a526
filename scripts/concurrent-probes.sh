#!/usr/bin/env bash
# Two `cumemlab probe` processes started at once on the same GPU: both must finish cleanly (exit 0),
# each reporting what it got, and cuMemGetInfo free (read by a third process) must be back where
# it was. Usage: scripts/concurrent-probes.sh BIN OUTDIR (the GPU bundle runs it as `concurrent`).
set -uo pipefail
bin=${1:?usage: concurrent-probes.sh BIN OUTDIR}
out=${2:?usage: concurrent-probes.sh BIN OUTDIR}
mkdir -p "$out"
free_now() { "$bin" info --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["environment"]["devices"][0]["cumemgetinfo_free_bytes"])'; }
before=$(free_now)
"$bin" probe --strategies device,pool,vmm --quiet --out "$out/probe-a.json" >"$out/probe-a.log" 2>&1 &
a=$!
"$bin" probe --strategies device,pool,vmm --quiet --out "$out/probe-b.json" >"$out/probe-b.log" 2>&1 &
b=$!
wait $a; rca=$?
wait $b; rcb=$?
sleep 1
after=$(free_now)
summary() {
  python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["rows"]:
    print(f'  {r["strategy"]:7} {r["kind"]:10} {r["max_bytes"]/2**30:8.2f} GiB  stopped: {r["stop_reason"]}  attempts {r["attempts"]}')
print(f'  complete: {d["complete"]}')
PY
}
echo "probe A: exit $rca"; summary "$out/probe-a.json"
echo "probe B: exit $rcb"; summary "$out/probe-b.json"
echo "cuMemGetInfo free before $before, after $after (diff $(( (after - before) >> 20 )) MiB)"
diff=$(( after - before )); diff=${diff#-}
if [ $rca -eq 0 ] && [ $rcb -eq 0 ] && [ $diff -lt $((64 << 20)) ]; then echo "concurrent probes: ok"; exit 0; fi
echo "concurrent probes: FAILED"; exit 1
