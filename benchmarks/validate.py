#!/usr/bin/env python3
"""Speed and memory of `fhirpkg validate`, printed as figures (never asserted).

Prints, each a median of --runs runs:
  1. cold CLI wall time on a small folder (a fresh process each time, definitions cache warm);
  2. throughput (resources/s, after one first pass reported apart) on the focus types (PlanDefinition, ActivityDefinition, Library,
     MedicationKnowledge, Citation, ResearchStudy examples of hl7.fhir.r5.examples), all layers on;
  3. throughput (reading included) and peak RSS over all 2,822 R5 examples, all layers on,
     streamed file by file as the CLI does, in a child process;
  4. the cost of each layer on that run.

Usage: python benchmarks/validate.py [--runs 3] [--skip-full] [--limit N]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FOCUS = ("PlanDefinition", "ActivityDefinition", "Library", "MedicationKnowledge", "Citation", "ResearchStudy")
FHIRPKG = shutil.which("fhirpkg", path=str(ROOT / ".venv" / "bin")) or shutil.which("fhirpkg")


def examples() -> Path:
    from fhirpkg.fhir import packages as pk
    return pk.ensure([pk.R5_EXAMPLES])[0].folder


def example_files(types=None) -> list[Path]:
    from fhirpkg.fhir.packages import resource_files
    return [p for p in resource_files(examples()) if types is None or p.name.split("-", 1)[0] in types]


def cold_cli(runs: int) -> list[float]:
    # as `make setup` does: with PYTHONDONTWRITEBYTECODE set, stale .pyc files would recompile every run
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "fhirpkg")], check=False)
    small = Path(tempfile.mkdtemp(prefix="fhirpkg-bench-"))
    for p in example_files(FOCUS)[:10]:
        shutil.copy(p, small / p.name)
    subprocess.run([FHIRPKG, "validate", str(small)], capture_output=True)  # warm the definitions cache
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([FHIRPKG, "validate", str(small)], capture_output=True)
        times.append(time.perf_counter() - t)
    shutil.rmtree(small, ignore_errors=True)
    return times


def in_process(files: list[Path], runs: int) -> dict:
    from fhirpkg import api
    from fhirpkg.fhir.inputs import Source, read_source
    from fhirpkg.validation import Options, Validator

    defs = api.load_definitions(log=None)
    docs = [d for f in files for d in read_source(Source(str(f), f))]
    rates = []
    layer_totals = None
    for _ in range(runs + 1):  # the first pass compiles each constraint once: reported apart
        v = Validator(defs, Options(timings=True))
        t = time.perf_counter()
        for d in docs:
            v.validate_document(d)
        secs = time.perf_counter() - t
        rates.append(len(docs) / secs)
        layer_totals = dict(v.layer_seconds)
    return {"resources": len(docs), "first": rates[0], "rates": rates[1:], "layers": layer_totals}


def child(args) -> int:
    """One streaming pass (read, validate, drop each file, as the CLI does), printed as JSON.

    Run in a child process so that its peak RSS is this pass's alone.
    """
    import resource
    from fhirpkg import api
    from fhirpkg.fhir.inputs import Source, read_source
    from fhirpkg.validation import Options, Validator

    files = example_files()
    if args.limit:
        files = files[: args.limit]
    defs = api.load_definitions(log=None)
    v = Validator(defs, Options(timings=True))
    count = 0
    t = time.perf_counter()
    for f in files:
        for d in read_source(Source(str(f), f)):
            v.validate_document(d)
            count += 1
    r = {"resources": count, "seconds": time.perf_counter() - t, "layers": dict(v.layer_seconds),
         "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(json.dumps(r))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    print(f"fhirpkg validate benchmark ({os.cpu_count()} cores, Python {sys.version.split()[0]})")
    cold = cold_cli(args.runs)
    print(f"1. cold CLI, 10 files: median {statistics.median(cold):.2f} s over {len(cold)} runs "
          f"({', '.join(f'{t:.2f}' for t in cold)})  [aim: <= 2 s]")
    focus = in_process(example_files(FOCUS), args.runs)
    print(f"2. focus types ({focus['resources']} resources): median {statistics.median(focus['rates']):.0f} "
          f"resources/s ({', '.join(f'{r:.0f}' for r in focus['rates'])}; first pass, compiling the "
          f"constraints: {focus['first']:.0f}/s)  [aim: >= 300/s per core]")
    if not args.skip_full:
        passes = []
        for _ in range(args.runs):
            out = subprocess.run([sys.executable, __file__, "--child", "--limit", str(args.limit)],
                                 capture_output=True, text=True)
            passes.append(json.loads(out.stdout.strip().splitlines()[-1]))
        rates = [p["resources"] / p["seconds"] for p in passes]
        rss = [p["peak_rss_mb"] for p in passes]
        print(f"3. all R5 examples ({passes[0]['resources']} resources): median {statistics.median(rates):.1f} "
              f"resources/s, {statistics.median(p['seconds'] for p in passes):.1f} s; peak RSS median "
              f"{statistics.median(rss):.0f} MB  [aim: <= 1024 MB]")
        layers = passes[-1]["layers"]
        total = sum(layers.values()) or 1
        print("4. cost of each layer (last full pass):")
        for name, secs in sorted(layers.items(), key=lambda kv: -kv[1]):
            print(f"     {name:12s} {secs:8.2f} s  {100 * secs / total:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
