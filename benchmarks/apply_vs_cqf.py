#!/usr/bin/env python3
"""`fhirpkg apply` next to the reference $apply engine (cqf-fhir-cr) on the same panel, printed side by side.

Per patient of tests/patients/expected.json, the same PlanDefinition (default nepc-pathway, which nests
every recommendation, information and investigational PlanDefinition):

* fhirpkg warm: in-process ``fhirpkg.api.apply`` after a first call (package loaded, ELM compiled),
  median of --runs runs;
* cqf-fhir-cr warm, fresh caches: in the JVM after --warmup untimed passes over the panel, median of
  --runs passes; each apply on a fresh repository with empty engine caches (what the interop test runs);
* cqf-fhir-cr warm, shared caches: the same with one engine settings object for every apply (compiled
  libraries and value sets cached across applies, as in a long-running server);
* cold one-shot: a fresh process applying one patient (``fhirpkg apply`` command; ``java -jar
  cqf_apply.jar`` with one run), wall time, median of --cold-runs; plus the first apply inside each.

Nothing is asserted.  The engine gets the R4 form of the package (fhirpkg.publish.convert.to_r4) and of the patient
records (fhirpkg.logic.r4data.to_r4_bundle); converting is not timed for either side.

Usage: python benchmarks/apply_vs_cqf.py [--runs 5] [--warmup 3] [--cold-runs 3] [--plan nepc-pathway]
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
sys.path.insert(0, str(ROOT / "tests"))
FHIRPKG = ROOT / ".venv" / "bin" / "fhirpkg"


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{b / a:,.1f}x"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--plan", default="nepc-pathway")
    opts = ap.parse_args()

    from interop import cqf
    from fhirpkg.logic.r4data import to_r4_bundle

    patients = cqf.patient_runs()
    if not patients:
        raise SystemExit(f"no patients in {cqf.expected_file()}")
    package = ROOT / "definitions"
    print(f"panel: {len(patients)} patients, PlanDefinition {opts.plan}; --runs {opts.runs} "
          f"--warmup {opts.warmup} --cold-runs {opts.cold_runs}", flush=True)

    # ---- fhirpkg, in process
    from fhirpkg.api import apply
    t = time.perf_counter()
    apply(opts.plan, str(patients[0].path), patients[0].subject, package=package)
    ours_first = (time.perf_counter() - t) * 1000
    ours = {}
    for p in patients:
        times = []
        for _ in range(opts.runs):
            t = time.perf_counter()
            apply(opts.plan, str(p.path), p.subject, package=package)
            times.append((time.perf_counter() - t) * 1000)
        ours[p.name] = statistics.median(times)

    # ---- cqf-fhir-cr, in one JVM
    content, _ = cqf.r4_content(package)
    runs = [{"name": p.name, "subject": p.subject, "plans": [cqf.plan_canonical(opts.plan)],
             "data": to_r4_bundle(json.loads(p.path.read_text(encoding="utf-8")))} for p in patients]
    fresh = cqf.run(content, runs, warmup=opts.warmup, repeat=opts.runs)
    shared = cqf.run(content, runs, warmup=opts.warmup, repeat=opts.runs, share_caches=True)
    theirs = {r["name"]: statistics.median(r["millis"]) for r in fresh["results"]}
    theirs_shared = {r["name"]: statistics.median(r["millis"]) for r in shared["results"]}

    # ---- cold one-shot processes, first patient
    first = patients[0]
    ours_cold, theirs_cold, theirs_cold_first = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        for _ in range(opts.cold_runs):
            t = time.perf_counter()
            subprocess.run([str(FHIRPKG), "apply", opts.plan, "--data", str(first.path), "--subject",
                            first.subject, "--package", str(package), "-o", str(out)],
                           check=True, capture_output=True)
            ours_cold.append((time.perf_counter() - t) * 1000)
    for _ in range(opts.cold_runs):
        doc = cqf.run(content, runs[:1])
        theirs_cold.append(doc["wallSeconds"] * 1000)
        theirs_cold_first.append(doc["timing"]["firstApplyMs"])

    w = max(len(p.name) for p in patients)
    print(f"\nper patient, warm, in process (ms, median of {opts.runs}):")
    print(f"{'patient':<{w}}  {'fhirpkg':>9}  {'cqf fresh':>10}  {'ratio':>7}  {'cqf shared':>10}  {'ratio':>7}")
    for p in patients:
        a, b, c = ours[p.name], theirs.get(p.name), theirs_shared.get(p.name)
        print(f"{p.name:<{w}}  {fmt_ms(a):>9}  {fmt_ms(b):>10}  {ratio(a, b):>7}  {fmt_ms(c):>10}  {ratio(a, c):>7}")
    ma, mb, mc = (statistics.median(d.values()) for d in (ours, theirs, theirs_shared))
    print(f"{'median':<{w}}  {fmt_ms(ma):>9}  {fmt_ms(mb):>10}  {ratio(ma, mb):>7}  {fmt_ms(mc):>10}  {ratio(ma, mc):>7}")
    print("\nfirst apply in a process (package/engine load and compile included, ms):")
    print(f"  fhirpkg {fmt_ms(ours_first)}   cqf-fhir-cr {fmt_ms(statistics.median(theirs_cold_first))}   "
          f"ratio {ratio(ours_first, statistics.median(theirs_cold_first))}")
    print(f"cold one-shot process, one patient (wall ms, median of {opts.cold_runs}):")
    print(f"  fhirpkg apply {fmt_ms(statistics.median(ours_cold))}   java -jar cqf_apply.jar "
          f"{fmt_ms(statistics.median(theirs_cold))}   ratio {ratio(statistics.median(ours_cold), statistics.median(theirs_cold))}")
    print(f"\ncqf-fhir-cr {fresh['engine']['version']} (HAPI {fresh['engine']['hapi']}, FHIR "
          f"{fresh['engine']['fhirVersion']}, Java {fresh['engine']['java']}); ratio = cqf-fhir-cr / fhirpkg")


if __name__ == "__main__":
    main()
