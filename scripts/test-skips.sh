#!/usr/bin/env bash
# Prints how many tests of one run skipped and why, from the run's skip record (the file the tests
# append to when CUMEMLAB_TEST_SKIP_LOG names it; tests/common/mod.rs writes it):
#   gpu<TAB><binary>::<test>               a GPU test started (it asked for the GPU)
#   skip<TAB><binary>::<test><TAB><reason> a test skipped
# Output, two lines:
#   GPU tests skipped: N of M (<count> x <reason>; ...)
#   Other tests skipped: K (<count> x <reason>; ...)
# A GPU test counts once however many skip lines it wrote. Exit code 0; 2 for a missing argument.
# Usage: scripts/test-skips.sh RECORD
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 RECORD (the file CUMEMLAB_TEST_SKIP_LOG named)" >&2
  exit 2
fi
record=$1
[ -f "$record" ] || : >"$record"
awk -F'\t' '
  $1 == "gpu"  { gpu[$2] = 1 }
  $1 == "skip" { if (!($2 in why)) { why[$2] = $3; order[++n] = $2 } }
  function summary(want,   i, t, k, r, count, seen, list, total) {
    total = 0; list = ""
    for (i = 1; i <= n; i++) {
      t = order[i]
      if (((t in gpu) ? 1 : 0) != want) continue
      total++
      r = why[t]
      if (!(r in count)) { seen[++k] = r }
      count[r]++
    }
    for (i = 1; i <= k; i++) list = list (i > 1 ? "; " : "") count[seen[i]] " x " seen[i]
    return total (list == "" ? "" : " (" list ")")
  }
  END {
    m = 0
    for (t in gpu) m++
    gs = summary(1); os = summary(0)
    sub(/^[0-9]+/, "& of " m, gs)
    print "GPU tests skipped: " gs
    print "Other tests skipped: " os
  }
' "$record"
