#!/usr/bin/env python3
"""Time of `fhirpkg apply` per patient, printed (never asserted).  Target: < 1 s for one patient.

For each patient of the panel (tests/patients/expected.json: file and subject), applies the pathway
(default nepc-pathway) and prints:
1. warm: in-process `fhirpkg.api.apply` after a first call has loaded the package and compiled the
   ELM, median of --runs runs per patient, then the median over the panel;
2. first call: package load + ELM compile + apply, in process (the first patient);
3. cold: the `fhirpkg apply` command in a fresh process (Python start included), median of --runs runs
   on the first patient.
Patient files can also be given as arguments (FILE:Patient/ID).

Usage: python benchmarks/apply.py [--runs 5] [--plan nepc-pathway] [FILE:Patient/ID ...]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FHIRPKG = ROOT / ".venv" / "bin" / "fhirpkg"


def panel(args: list[str]) -> list[tuple[Path, str]]:
    if args:
        return [(Path(a.rsplit(":", 1)[0]), a.rsplit(":", 1)[1]) for a in args]
    expected = ROOT / "tests" / "patients" / "expected.json"
    if not expected.is_file():
        raise SystemExit("no tests/patients/expected.json: name patient files as FILE:Patient/ID")
    cases = json.loads(expected.read_text())
    return [(expected.parent / name, case["subject"]) for name, case in sorted(cases.items())]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--plan", default="nepc-pathway")
    ap.add_argument("patients", nargs="*")
    opts = ap.parse_args()
    cases = panel(opts.patients)
    package = ROOT / "definitions"

    t = time.perf_counter()
    from fhirpkg.api import apply
    first = apply(opts.plan, str(cases[0][0]), cases[0][1], package=package)
    first_call = time.perf_counter() - t

    medians = []
    for path, subject in cases:
        times = []
        for _ in range(opts.runs):
            t = time.perf_counter()
            apply(opts.plan, str(path), subject, package=package)
            times.append(time.perf_counter() - t)
        medians.append(statistics.median(times))
        print(f"  {path.name:40s} {subject:28s} {medians[-1] * 1000:8.1f} ms")
    print(f"warm apply ({opts.plan}), median over {len(cases)} patients: {statistics.median(medians) * 1000:.1f} ms "
          f"(max {max(medians) * 1000:.1f} ms; {opts.runs} runs each)")
    print(f"first call in a process (package load, ELM compile, apply): {first_call * 1000:.0f} ms "
          f"({len(first.actions)} actions)")

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "fhirpkg")], check=False)
    out = Path(tempfile.mkdtemp(prefix="fhirpkg-bench-apply-")) / "out.json"
    cold = []
    for _ in range(opts.runs):
        t = time.perf_counter()
        proc = subprocess.run([str(FHIRPKG), "apply", opts.plan, "--data", str(cases[0][0]), "--subject",
                               cases[0][1], "--package", str(package), "-o", str(out)],
                              capture_output=True, text=True, cwd=ROOT)
        cold.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise SystemExit(f"fhirpkg apply failed: {proc.stderr.strip()}")
    print(f"cold `fhirpkg apply` (fresh process), median of {opts.runs}: {statistics.median(cold) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
