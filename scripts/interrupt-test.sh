#!/usr/bin/env bash
# Interrupts real runs on a GPU host and checks the promises of docs/RELIABILITY.md:
#   SIGINT  -> exit 130, the partial result file is valid JSON holding the finished rows and marked
#              interrupted (no file when stopped before the first row), and cuMemGetInfo free (read
#              by a second process) is back where it was;
#   SIGKILL -> the file on disk still parses with the rows finished before the kill.
# Usage: scripts/interrupt-test.sh BIN OUTDIR   (the GPU bundle runs it as step `interrupt`)
set -uo pipefail
bin=${1:?usage: interrupt-test.sh BIN OUTDIR}
out=${2:?usage: interrupt-test.sh BIN OUTDIR}
mkdir -p "$out"
fails=0
free_now() { "$bin" info --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["environment"]["devices"][0]["cumemgetinfo_free_bytes"])'; }
# A run stopped before its first row writes no file (an older one would stay): "no-file".
rows_in() { [ -e "$1" ] || { echo no-file; return; }; python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["rows"]), d["complete"], d["interrupted"])' "$1" 2>&1; }

# name, signal, delay (s), then the cumemlab arguments (the result file is appended as --out)
trial() {
  local name=$1 sig=$2 delay=$3; shift 3
  local file="$out/$name.json"
  rm -f "$file"
  local before; before=$(free_now)
  local t0; t0=$(date +%s.%N)
  "$bin" "$@" --quiet --out "$file" >"$out/$name.log" 2>&1 &
  local pid=$!
  sleep "$delay"
  local t1; t1=$(date +%s.%N)
  kill -s "$sig" "$pid"
  wait "$pid"; local rc=$?
  local t2; t2=$(date +%s.%N)
  sleep 1
  local after; after=$(free_now)
  local rows; rows=$(rows_in "$file")
  local diff=$(( after - before )); diff=${diff#-}
  local want=130; [ "$sig" = KILL ] && want=137
  local ok=yes
  [ "$rc" -eq "$want" ] || ok=no
  [ "$diff" -lt $((64 << 20)) ] || ok=no
  case "$rows" in [0-9]*|no-file) ;; *) ok=no ;; esac
  [ "$sig" = INT ] && case "$rows" in *"False True"|no-file) ;; *) ok=no ;; esac
  [ $ok = yes ] || fails=$((fails + 1))
  printf '| %s | %s after %ss | exit %s (want %s) | %s s to exit | rows, complete, interrupted: %s | free before %s, after %s (diff %d MiB) | %s |\n' \
    "$name" "SIG$sig" "$delay" "$rc" "$want" "$(python3 -c "print(round($t2-$t1,2))")" "$rows" "$before" "$after" $((diff >> 20)) "$ok"
}

echo "| trial | signal | exit | time to exit | file | cuMemGetInfo free | ok |"
echo "|---|---|---|---|---|---|---|"
trial sweep-during-pinned-alloc INT 2 sweep --strategies pinned --sizes 32GiB --runs 2
trial sweep-during-kernels INT 6 sweep --strategies device,managed --sizes 16GiB --runs 400
trial sweep-early INT 0.3 sweep --strategies device,managed,pinned --sizes 1GiB,4GiB
trial sweep-killed KILL 5 sweep --strategies device,managed,pool,vmm --sizes 1GiB,4GiB,8GiB
if "$bin" probe --help >/dev/null 2>&1; then
  trial probe-during-bisection INT 3 probe --strategies device,managed,pinned
  # managed first: its touched probe takes over ten seconds, so the kill lands mid-search.
  trial probe-killed KILL 4 probe --strategies managed,device
fi
echo "interrupt trials failed: $fails"
exit $fails
