#!/usr/bin/env bash
# Issue 13's safe boundary, checked on the source (no build needed; scripts/check-structure.sh and
# .ci/run may call it): `unsafe` appears in code only under src/driver/, src/lib.rs forbids
# unsafe code in every top-level module but `driver`, and src/main.rs forbids it crate-wide.
# The compiler enforces the forbids; this catches their removal. Comments and strings that merely
# mention the word do not count (a line counts when `unsafe` comes before any `//`).
# `// SAFETY:` lines on every block under src/driver/ are checked by clippy
# (`undocumented_unsafe_blocks`, denied on the module in src/lib.rs).
# Exit 0 when all hold, 1 with one line per offence otherwise.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bad=0
say() { echo "check-unsafe: $*"; bad=1; }

# 1. No `unsafe` in code outside src/driver/.
while IFS= read -r hit; do
  file=${hit%%:*}
  rest=${hit#*:}
  line=${rest#*:}
  code=${line%%//*}
  if printf '%s' "$code" | grep -Eq '(^|[^A-Za-z0-9_])unsafe([^A-Za-z0-9_]|$)'; then
    say "unsafe outside src/driver: $file:${rest%%:*}: $(printf '%s' "$line" | sed 's/^ *//')"
  fi
done < <(grep -rnE --include='*.rs' '(^|[^A-Za-z0-9_])unsafe([^A-Za-z0-9_]|$)' src | grep -v '^src/driver/' || true)

# 2. Every top-level module of the library but `driver` carries #[forbid(unsafe_code)].
prev=""
while IFS= read -r l; do
  if [[ $l =~ ^(pub(\(crate\))?\ )?mod\ ([a-z_0-9]+)\; ]]; then
    m=${BASH_REMATCH[3]}
    if [ "$m" != driver ] && [ "$prev" != "#[forbid(unsafe_code)]" ]; then
      say "src/lib.rs: module \`$m\` lacks #[forbid(unsafe_code)] on the line above it"
    fi
  fi
  prev=$l
done <src/lib.rs

# 3. The binary's own modules forbid it too.
grep -qx '#!\[forbid(unsafe_code)\]' src/main.rs || say "src/main.rs lacks #![forbid(unsafe_code)]"

[ $bad -eq 0 ] && echo "check-unsafe: unsafe only under src/driver/; every other module forbids it"
exit $bad
