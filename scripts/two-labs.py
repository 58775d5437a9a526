#!/usr/bin/env python3
# Two lab folders A B (issue 10): the fewest samples of any alloc/first-touch row (must be >= 3), and
# for each strategy at its largest size whether the GPU-first-touch medians lie within each
# other's min-max, or the phase is flagged unstable in a report. Usage: two-labs.py A B
import json,sys
R=[(json.load(open(d+'/results.json')),open(d+'/report.md').read()) for d in sys.argv[1:3]]
print('fewest samples in alloc/first-touch rows:',min(len(x.get('samples_ms',[])) for r,_ in R for x in r['sweep']['rows'] if x['phase'] in('alloc','gpu_first_touch')))
def ft(r):
  rows=[x for x in r['sweep']['rows'] if x['phase']=='gpu_first_touch']; big={}
  for x in rows: big[x['strategy']]=max(big.get(x['strategy'],0),x['bytes'])
  return {x['strategy']:x for x in rows if x['bytes']==big[x['strategy']]}
A,B=ft(R[0][0]),ft(R[1][0])
for s in sorted(set(A)&set(B)):
  x,y=A[s],B[s]; ok=y['ms_min']<=x['ms_median']<=y['ms_max'] and x['ms_min']<=y['ms_median']<=x['ms_max']
  fl=any('Unstable' in l and s+' gpu_first_touch at' in l for _,t in R for l in t.splitlines())
  print(f"{s} {x['bytes']/2**30:.2f} GiB: A {x['ms_median']:.2f} [{x['ms_min']:.2f}-{x['ms_max']:.2f}] B {y['ms_median']:.2f} [{y['ms_min']:.2f}-{y['ms_max']:.2f}]:",'within' if ok else 'flagged unstable' if fl else 'NOT within and NOT flagged')
