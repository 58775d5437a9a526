#!/usr/bin/env python3
"""Are two `cumemlab lab` folders identical in shape? (issue 13: a restructured build must write
the same files, the same CSV columns and the same results.json keys as the build before it.)

Usage: scripts/lab-shape.py OLD_FOLDER NEW_FOLDER [--allow-new KEY,...]

Compares, and prints every difference:
  - the files (relative paths; plot files by name, since their count follows the devices),
  - each CSV file's header row,
  - results.json's key paths with the JSON type at each (arrays collapsed to `[]`, so the number of
    rows does not count; a key that is null in one run and set in the other is reported as a type
    difference only when both sides are non-null),
  - steps.csv's step names in order.
Keys or files listed with --allow-new may exist only in NEW (what another issue added on purpose):
they are printed as "added (allowed)". Exit 0 when the shapes match, 1 when they differ.
Values are not compared: two labs on one machine measure different numbers.
"""
import csv
import json
import os
import sys


def files(root):
    out = set()
    for d, _, fs in os.walk(root):
        for f in fs:
            out.add(os.path.relpath(os.path.join(d, f), root))
    return out


def header(path):
    with open(path, newline="") as f:
        for row in csv.reader(f):
            return row
    return []


def kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def paths(v, prefix, out):
    """Every key path under v with the set of non-null types seen there."""
    k = kind(v)
    out.setdefault(prefix, set())
    if k != "null":
        out[prefix].add(k)
    if isinstance(v, dict):
        for key, x in v.items():
            paths(x, f"{prefix}.{key}" if prefix else key, out)
    elif isinstance(v, list):
        for x in v:
            paths(x, prefix + "[]", out)


def steps(root):
    p = os.path.join(root, "steps.csv")
    if not os.path.exists(p):
        return []
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    return [(r.get("step") or r.get("name") or "?") for r in rows]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--allow-new")]
    allow = set()
    for i, a in enumerate(sys.argv[1:]):
        if a.startswith("--allow-new="):
            allow |= set(a.split("=", 1)[1].split(","))
        elif a == "--allow-new" and i + 2 < len(sys.argv):
            allow |= set(sys.argv[i + 2].split(","))
            args.remove(sys.argv[i + 2])
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    old, new = args
    diffs = []

    def allowed(name):
        return any(name == a or name.startswith(a + ".") or name.startswith(a + "/") for a in allow)

    fo, fn = files(old), files(new)
    for f in sorted(fo - fn):
        diffs.append(f"file missing in new: {f}")
    for f in sorted(fn - fo):
        (print if allowed(f) else diffs.append)(f"file added: {f}" + (" (allowed)" if allowed(f) else ""))
    for f in sorted(fo & fn):
        if f.endswith(".csv"):
            ho, hn = header(os.path.join(old, f)), header(os.path.join(new, f))
            if ho != hn:
                diffs.append(f"{f}: header differs\n  old: {ho}\n  new: {hn}")
    jo, jn = {}, {}
    with open(os.path.join(old, "results.json")) as f:
        paths(json.load(f), "", jo)
    with open(os.path.join(new, "results.json")) as f:
        paths(json.load(f), "", jn)
    for k in sorted(set(jo) - set(jn)):
        diffs.append(f"results.json key missing in new: {k}")
    for k in sorted(set(jn) - set(jo)):
        if allowed(k):
            print(f"results.json key added: {k} (allowed)")
        else:
            diffs.append(f"results.json key added: {k}")
    for k in sorted(set(jo) & set(jn)):
        if jo[k] and jn[k] and jo[k] != jn[k]:
            diffs.append(f"results.json {k}: type {sorted(jo[k])} -> {sorted(jn[k])}")
    so, sn = steps(old), steps(new)
    if so != sn:
        diffs.append(f"steps.csv steps differ\n  old: {so}\n  new: {sn}")
    for d in diffs:
        print(d)
    print(f"lab-shape: {old} vs {new}: {len(fo & fn)} common files, {len(set(jo) & set(jn))} common JSON key paths, "
          + ("same shape" if not diffs else f"{len(diffs)} difference(s)"))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
