#!/usr/bin/env bash
# Shows that `NVCC=/path/to/nvcc cargo build` builds the kernels with that compiler (build.rs lets
# the cc crate pick nvcc, and cc honours NVCC): a wrapper script that logs each call and runs the
# real nvcc is named in NVCC, and the check passes only when
#   - the wrapper was called with --fatbin and every -gencode of the fatbin (SASS sm_80 ... sm_121
#     and compute_80 PTX),
#   - build.rs's record of the command it ran (OUT_DIR/nvcc-command.txt) starts with the wrapper,
#   - a wrapper that fails makes the build fail (the compiler named is the one that runs).
# Then `cargo tree` must show cc as a build dependency and libc as a normal one.
# Uses the normal target folder (the crate is rebuilt twice: with and without NVCC).
# Exit code 0 when all of that holds, 1 otherwise.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
say() { printf 'check-nvcc: %s\n' "$*"; }
fail() { say "FAIL: $*"; exit 1; }

# The OUT_DIR of this package's build script in a `cargo build` with the given environment.
out_dir() {
  { env "$@" cargo build --message-format=json 2>/dev/null || true; } | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "build-script-executed" and "/build/cumemlab-" in m.get("out_dir", ""):
        print(m["out_dir"])
'
}

unset NVCC
plain=$(out_dir)
[ -n "$plain" ] || fail "no build-script output of cumemlab in a plain cargo build"
real=$(cut -d' ' -f1 "$plain/nvcc-command.txt")
[ -x "$real" ] || fail "build.rs's nvcc ($real) is not executable"
say "build.rs picked $real without NVCC"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/nvcc" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>"$tmp/calls.log"
exec "$real" "\$@"
EOF
chmod +x "$tmp/nvcc"

wrapped=$(out_dir NVCC="$tmp/nvcc")
[ -n "$wrapped" ] || fail "NVCC=$tmp/nvcc cargo build did not build"
[ -s "$tmp/calls.log" ] || fail "NVCC=$tmp/nvcc cargo build never called the wrapper"
grep -q -- '--fatbin' "$tmp/calls.log" || fail "the wrapper was not asked for the fatbin: $(cat "$tmp/calls.log")"
for a in 80 86 89 90 100 120 121; do
  grep -q -- "-gencode=arch=compute_$a,code=sm_$a" "$tmp/calls.log" || fail "no sm_$a in: $(grep -- --fatbin "$tmp/calls.log")"
done
grep -q -- '-gencode=arch=compute_80,code=compute_80' "$tmp/calls.log" || fail "no compute_80 PTX"
first=$(cut -d' ' -f1 "$wrapped/nvcc-command.txt")
[ "$first" = "$tmp/nvcc" ] || fail "build.rs ran $first, not the NVCC wrapper"
say "NVCC=$tmp/nvcc: the wrapper built the fatbin ($(grep -c -- --fatbin "$tmp/calls.log") call(s) with --fatbin)"

printf '#!/bin/sh\necho "broken nvcc" >&2\nexit 3\n' >"$tmp/broken"
chmod +x "$tmp/broken"
if NVCC="$tmp/broken" cargo build >"$tmp/broken.log" 2>&1; then
  fail "NVCC naming a failing compiler still built"
fi
grep -q 'broken nvcc' "$tmp/broken.log" || fail "the failing NVCC did not run: $(tail -5 "$tmp/broken.log")"
say "NVCC=a failing compiler: the build fails with its message"

cargo tree --edges build --depth 1 | sed -n '/\[build-dependencies\]/,$p' | grep -q 'cc v' || fail "cc is not a build dependency"
cargo tree --edges normal --depth 1 | grep -q 'libc v' || fail "libc is not a normal dependency"
grep -rqE '\blibc::' src || fail "nothing in src/ uses libc"
say "cargo tree: cc is a build dependency, libc a dependency used in src/ ($(grep -rlE '\blibc::' src | tr '\n' ' '))"

# Leave the target folder built the normal way.
cargo build -q 2>/dev/null || true
say "ok"
