#!/usr/bin/env python3
"""CPU time of validating all 2,822 R5 examples in one process, this checkout against another,
printed (never asserted).

Each round starts both at once, one process each on its own core (the machine is 2 cores), so
whatever else runs slows both alike; it prints the CPU seconds of the validation alone (reading
included, loading excluded) and the issue count, which must be the same for both.  For a before/
after pair, make a worktree of the older commit: ``git worktree add /tmp/base <commit>``.

Usage: python benchmarks/examples_ab.py --base DIR [--rounds 2]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Run in a child: validate every R5 example file with the code in argv[1]; print issues and CPU seconds.
CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from fhirpkg import api
from fhirpkg.fhir import packages as pk
from fhirpkg.fhir.jsonsource import read_documents
from fhirpkg.validation import Validator
validator = Validator(api.load_definitions(log=None))
validator.warm()
files = sorted(pk.resource_files(pk.ensure([pk.R5_EXAMPLES])[0].folder))
started, issues = time.process_time(), 0
for f in files:
    for doc in read_documents(f.read_bytes(), str(f)):
        issues += len(validator.validate_document(doc))
print(issues, time.process_time() - started)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="the other fhirpkg checkout")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    roots = {"base": args.base.resolve(), "this": ROOT}
    cpu: dict[str, list[float]] = {"base": [], "this": []}
    for n in range(args.rounds):
        procs = {k: subprocess.Popen([sys.executable, "-c", CHILD, str(r)], stdout=subprocess.PIPE, text=True)
                 for k, r in roots.items()}
        out = {k: p.communicate()[0].split() for k, p in procs.items()}
        if any(p.returncode for p in procs.values()) or any(len(o) != 2 for o in out.values()):
            print(f"a child failed: {out}", file=sys.stderr)
            return 1
        for k, (issues, seconds) in out.items():
            cpu[k].append(float(seconds))
            print(f"round {n + 1}: {k:4} {roots[k]}: {float(seconds):6.2f} s CPU, {issues} issues")
    base, this = statistics.median(cpu["base"]), statistics.median(cpu["this"])
    print(f"median CPU: base {base:.2f} s, this {this:.2f} s, this/base x{this / base:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
