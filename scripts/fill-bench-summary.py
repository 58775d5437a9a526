#!/usr/bin/env python3
"""Summarises `fill-bench sweep` output (issue 10): best shape of each variant (mean % of
cuMemsetD32 over the sizes), the top shapes per size, and `--pick N` prints the N best verified
specs (for `fill-bench confirm` and ncu)."""
import sys
from collections import defaultdict

path = sys.argv[1]
pick = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--pick" else 0
rows = []
for line in open(path):
    if not line.startswith("csv,") or line.startswith("csv,size_gib"):
        continue
    f = line.strip().split(",")
    rows.append(dict(size=float(f[1]), spec=f[2], variant=f[3], gbps=float(f[8]),
                     pct=float(f[9]), memset=float(f[10]), bad=int(f[11])))
by_spec = defaultdict(dict)
for r in rows:
    by_spec[r["spec"]][r["size"]] = r
sizes = sorted({r["size"] for r in rows})
complete = {s: d for s, d in by_spec.items() if len(d) == len(sizes)}
score = {s: sum(d[z]["pct"] for z in sizes) / len(sizes) for s, d in complete.items()}
ok = lambda s: all(complete[s][z]["bad"] == 0 for z in sizes) and "const" not in s
if pick:
    print(" ".join(sorted((s for s in complete if ok(s)), key=lambda s: -score[s])[:pick]))
    sys.exit(0)
bad = [r for r in rows if r["bad"]]
print(f"{len(rows)} measurements, {len(bad)} with wrong data: {[r['spec'] for r in bad][:10]}")
print("best shape of each variant (% of cuMemsetD32, median of 10, per size; mean):")
best = {}
for s in complete:
    v = s.split(":")[0]
    if v not in best or score[s] > score[best[v]]:
        best[v] = s
for v, s in sorted(best.items(), key=lambda kv: -score[kv[1]]):
    cells = "  ".join(f"{z:g}GiB {complete[s][z]['gbps']:.0f}={complete[s][z]['pct']:.1f}%" for z in sizes)
    worst = min((score[t] for t in complete if t.split(":")[0] == v), default=0)
    print(f"  {s:28s} mean {score[s]:.2f}%  {cells}  (worst shape of this variant {worst:.1f}%)")
for z in sizes:
    top = sorted((r for r in rows if r["size"] == z), key=lambda r: -r["pct"])[:8]
    print(f"top at {z:g} GiB (memset {top[0]['memset']:.0f} GB/s): " +
          ", ".join(f"{r['spec']} {r['pct']:.1f}%" for r in top))
