#!/usr/bin/env python3
"""The HL7 FHIR validator and `fhirpkg validate` on the same files, side by side (never asserted).

For each measure, the median of --runs runs of each tool, and the ratio:
  1. cold wall time on the package: a fresh process validating definitions/ (102 resources);
  2. throughput on a sample of R5 examples (the focus types plus an evenly spaced sample),
     in one process each: resources per second over the whole run (load included) and over
     validation alone (the HL7 validator's own load/validate split; fhirpkg measured in-process);
  3. peak RSS of each run (getrusage of the child process).

Usage: python benchmarks/vs_hl7.py [--runs 3] [--sample 200]
Needs the interop harness built (tests/interop/setup.sh).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from interop import hl7  # noqa: E402

FHIRPKG = ROOT / ".venv" / "bin" / "fhirpkg"
FOCUS = ("PlanDefinition", "ActivityDefinition", "Library", "MedicationKnowledge", "Citation", "ResearchStudy")


def measure(cmd: list[str]) -> dict:
    """Run cmd in a fresh Python child so its peak RSS is its own."""
    code = ("import json,resource,subprocess,sys,time;t=time.perf_counter();"
            "p=subprocess.run(json.loads(sys.argv[1]),capture_output=True,text=True);"
            "w=time.perf_counter()-t;r=resource.getrusage(resource.RUSAGE_CHILDREN);"
            "print(json.dumps({'wall':w,'rss_mb':r.ru_maxrss/1024,'cpu':r.ru_utime+r.ru_stime,"
            "'rc':p.returncode,'out':p.stdout[-2000:],'err':p.stderr[-2000:]}))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(cmd)], capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def sample(n: int) -> list[Path]:
    from fhirpkg.fhir import packages as pk
    folder = pk.ensure([pk.R5_EXAMPLES])[0].folder
    files = sorted(p for p in folder.glob("*.json") if p.name not in ("package.json", ".index.json"))
    focus = [p for p in files if p.name.split("-", 1)[0] in FOCUS]
    rest = [p for p in files if p not in focus and p.stat().st_size < 2**20]
    step = max(1, len(rest) // max(1, n - len(focus)))
    return sorted(set(focus + rest[::step]))[:n]


def hl7_cmd(files: list[Path], listing: Path, igs=(), extra=()) -> list[str]:
    listing.write_text("\n".join(str(f.resolve()) for f in files) + "\n")
    return [*hl7.base_command(igs, extra), "-sources", str(listing), "-output", str(listing.with_suffix(".out.json"))]


def fhirpkg_inprocess(files: list[Path]) -> float:
    """Validation alone, in-process (definitions already loaded): resources per second."""
    from fhirpkg import api
    from fhirpkg.fhir.inputs import Source, read_source
    from fhirpkg.validation import Validator
    defs = api.load_definitions(log=None)
    docs = [d for f in files for d in read_source(Source(str(f), f))]
    v = Validator(defs)
    for d in docs[:5]:
        v.validate_document(d)  # compile what the first files need
    v = Validator(defs)
    t = time.perf_counter()
    for d in docs:
        v.validate_document(d)
    return len(docs) / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sample", type=int, default=200)
    args = ap.parse_args()
    defs_files = sorted(p for p in (ROOT / "definitions").rglob("*.json") if p.name != "package.json")
    examples = sample(args.sample)
    tmp = Path(tempfile.mkdtemp(prefix="fhirpkg-vs-hl7-"))
    print(f"HL7 validator {hl7.HL7_CORE_VERSION} (org.hl7.fhir.validation, -tx n/a) vs fhirpkg; "
          f"{args.runs} runs each; load average {open('/proc/loadavg').read().split()[0]}")

    rows = {}
    for label, files, igs, extra in (
            ("package (definitions/, cold)", defs_files, [str(ROOT / "definitions")], ["-allow-example-urls", "true"]),
            (f"R5 examples sample ({len(examples)} files)", examples, [], ["-allow-example-urls", "true"])):
        h = [measure(hl7_cmd(files, tmp / "list.txt", igs, extra)) for _ in range(args.runs)]
        target = [str(ROOT / "definitions")] if "package" in label else [str(f) for f in files]
        f = [measure([str(FHIRPKG), "validate", *target, "--format", "json"]) for _ in range(args.runs)]
        rows[label] = (h, f, len(files))
    print(f"\n{'measure':44s} {'HL7 validator':>16s} {'fhirpkg':>12s} {'ratio':>8s}")
    for label, (h, f, n) in rows.items():
        hw, fw = statistics.median(x["wall"] for x in h), statistics.median(x["wall"] for x in f)
        hr, fr = statistics.median(x["rss_mb"] for x in h), statistics.median(x["rss_mb"] for x in f)
        print(f"{label + ': wall s':44s} {hw:16.2f} {fw:12.2f} {hw / fw:7.1f}x")
        print(f"{label + ': resources/s (load included)':44s} {n / hw:16.1f} {n / fw:12.1f} {(n / fw) / (n / hw):7.1f}x")
        print(f"{label + ': peak RSS MB':44s} {hr:16.0f} {fr:12.0f} {hr / fr:7.1f}x")
    rate = statistics.median(fhirpkg_inprocess(examples) for _ in range(args.runs))
    print(f"{'examples sample: fhirpkg validation alone':44s} {'':16s} {rate:12.1f} resources/s (in-process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
