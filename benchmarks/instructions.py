#!/usr/bin/env python3
"""Instructions per bulk resource, counted by valgrind: a per-core figure that other work on a
shared machine does not move (wall and CPU times do).

Validates the first SMALL and the first LARGE lines of a bulk NDJSON file in one process each,
under ``valgrind --tool=cachegrind --cache-sim=no``, and prints
(instructions(LARGE) - instructions(SMALL)) / (LARGE - SMALL): start-up and loading cancel out.
``--root`` measures another checkout of fhirpkg (e.g. a worktree of an older commit) with this
script, for a before/after pair; the issue counts printed should then be the same.

Usage: python benchmarks/instructions.py [--file bulk.ndjson] [--small 100] [--large 300] [--root DIR]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Run under valgrind: validate the first N lines of an NDJSON file with every layer, print the issue count.
CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from fhirpkg import api
from fhirpkg.fhir.jsonsource import ndjson_documents
from fhirpkg.validation import Validator
validator = Validator(api.load_definitions(log=None))
validator.warm()
with open(sys.argv[2], encoding="utf-8") as f:
    lines = [(n, line.rstrip("\\n")) for n, line in zip(range(int(sys.argv[3])), f)]
print("issues", sum(len(validator.validate_document(d)) for d in ndjson_documents(lines, sys.argv[2], [])))
"""


def count(root: Path, path: Path, n: int) -> tuple[int, int]:
    """(instructions, issues) of validating the first ``n`` lines of ``path`` with the code in ``root``."""
    proc = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                           sys.executable, "-c", CHILD, str(root), str(path), str(n)],
                          capture_output=True, text=True, check=True)
    refs = re.search(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    issues = re.search(r"issues (\d+)", proc.stdout)
    if refs is None or issues is None:
        raise SystemExit(f"unexpected valgrind output:\n{proc.stderr[-2000:]}")
    return int(refs.group(1).replace(",", "")), int(issues.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, help="bulk NDJSON (default: benchmarks/bulk_ndjson.py's, LARGE lines)")
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--large", type=int, default=300)
    ap.add_argument("--root", type=Path, default=ROOT, help="the fhirpkg checkout to measure")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    if not args.small < args.large:
        print("--small must be below --large", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fhirpkg-bench-ir-") as tmp:
        path = args.file
        if path is None:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import bulk_ndjson
            path = Path(tmp) / "bulk.ndjson"
            bulk_ndjson.write(path, args.large)
        small, large = count(args.root, path, args.small), count(args.root, path, args.large)
    per = (large[0] - small[0]) / (args.large - args.small)
    print(f"{args.root}: {per / 1e6:.2f} M instructions per resource "
          f"(lines {args.small} -> {args.large}: {small[0]:,} -> {large[0]:,}; issues {small[1]} -> {large[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
