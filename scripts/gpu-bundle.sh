#!/usr/bin/env bash
# Builds what a GPU host with no Rust toolchain needs, into target/gpu-bundle/:
#   cumemlab        the release binary
#   tests/NAME      every test executable (lib unit tests and tests/*.rs), release profile
#   run.sh          the runner: `run.sh [STEP...]` (default: tests sanitize selftest)
#   test-skips.sh   counts the skipped tests of the `tests` step (scripts/test-skips.sh)
# and packs the whole folder, stripped, into target/gpu-carry/bundle.tar.xz (what travels).
# Carry target/gpu-bundle to the GPU host and run target/gpu-bundle/run.sh from the repository
# root there; logs and results go under $OUT (or /tmp/cumemlab-out).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bundle="$repo/target/gpu-bundle"

scripts/install-cuda-toolkit.sh >/dev/null
cargo build --release --bins
json=$(cargo test --release --no-run --message-format=json 2>/dev/null)

rm -rf "$bundle"
mkdir -p "$bundle/tests"
cp target/release/cumemlab "$bundle/cumemlab"
printf '%s\n' "$json" | python3 -c '
import json, sys, shutil, os
dest = sys.argv[1]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m.get("profile", {}).get("test"):
        name = m["target"]["name"]
        kind = m["target"]["kind"][0]
        out = os.path.join(dest, name if kind == "test" else name + "-" + kind)
        shutil.copy2(m["executable"], out)
        print("bundled", out)
' "$bundle/tests"
cp scripts/gpu-run.sh "$bundle/run.sh"
cp scripts/interrupt-test.sh scripts/concurrent-probes.sh scripts/test-skips.sh "$bundle/"
chmod +x "$bundle/run.sh" "$bundle/interrupt-test.sh" "$bundle/concurrent-probes.sh" "$bundle/test-skips.sh"
# Symbols are not needed there; stripped, and packed as one archive, the bundle stays well under
# the device tool's 64 MiB limit for what travels (target/gpu-carry/bundle.tar.xz; unpack it there
# with `tar xJf target/gpu-carry/bundle.tar.xz -C target`).
if command -v strip >/dev/null; then strip "$bundle/cumemlab" "$bundle"/tests/*; fi
du -sh "$bundle"
mkdir -p "$repo/target/gpu-carry"
tar cJf "$repo/target/gpu-carry/bundle.tar.xz" -C "$repo/target" gpu-bundle
du -sh "$repo/target/gpu-carry/bundle.tar.xz"
