#!/usr/bin/env python3
"""Scale figures side by side, printed (never asserted): one core against every core.

Each line is the median of --runs runs of the real CLI in a fresh process (definitions cache
warm), with wall time, user+sys CPU time of the process and its workers (the machine may be
shared: CPU time is the figure that does not depend on what else runs) and peak RSS of the
largest process.

  1. bulk clinical NDJSON (benchmarks/bulk_ndjson.py): -j 1 and -j N, resources/s;
  2. streaming: peak RSS of -j 1 on the bulk file and on one 4x larger (flat = streaming);
  3. the R5 examples (all 2,822 files, every layer), -j 1 and -j N   [--examples: minutes];
  4. `fhirpkg build` of a generated project (benchmarks/build.py), --build-size resources,
     validating with 1 process and with N (in-process; --build), then incremental builds with the
     build cache (fresh processes: nothing changed, one edited resource) beside a clean one;
  5. Apache Spark on this machine: --spark local[1] and local[N] beside -j N (--spark; needs
     pyspark; each run starts its own JVM, about 10-20 s, which the figures include), on a file
     of --spark-resources resources (default --resources: larger files show executor scaling).
  6. cold start on definitions/ against the HL7 validator, fresh processes (--cold; needs the interop
     harness, tests/interop/setup.sh; the same measure as benchmarks/vs_hl7.py's first line).

Usage: python benchmarks/scale.py [--runs 3] [--resources 5000] [--jobs N] [--examples] [--build]
       [--build-size 10000] [--spark] [--spark-resources N] [--cold]
"""
from __future__ import annotations

import argparse
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
sys.path.insert(0, str(ROOT / "benchmarks"))
FHIRPKG = str(ROOT / ".venv" / "bin" / "fhirpkg")


def run(args: list[str]) -> dict:
    """One CLI run: wall s, CPU s (user+sys, workers included), peak RSS MB."""
    t = time.perf_counter()
    proc = subprocess.Popen([FHIRPKG, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall": time.perf_counter() - t, "cpu": usage.ru_utime + usage.ru_stime,
            "rss": usage.ru_maxrss / 1024, "exit": proc.returncode}


def median_run(args: list[str], runs: int) -> dict:
    rs = [run(args) for _ in range(runs)]
    return {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "rss")} | {"all": rs}


def line(label: str, n: int, r: dict) -> str:
    return (f"   {label:10s} {r['wall']:7.1f} s wall ({n / r['wall']:6.0f} res/s)   "
            f"{r['cpu']:7.1f} s CPU ({n / r['cpu']:6.0f} res per CPU-s)   peak RSS {r['rss']:5.0f} MB")


def main() -> int:
    from fhirpkg.parallel import cores
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--resources", type=int, default=5000)
    ap.add_argument("--jobs", type=int, default=cores())
    ap.add_argument("--examples", action="store_true", help="also validate all R5 examples (minutes)")
    ap.add_argument("--build", action="store_true", help="also build a generated project")
    ap.add_argument("--build-size", type=int, default=10000)
    ap.add_argument("--spark", action="store_true", help="also run on Spark local[1] and local[N]")
    ap.add_argument("--cold", action="store_true", help="also cold start on definitions/ against the HL7 validator")
    ap.add_argument("--spark-resources", type=int, default=0,
                    help="resources in the Spark section's file (default: --resources)")
    args = ap.parse_args()
    import bulk_ndjson
    j = str(args.jobs)
    print(f"fhirpkg scale benchmark: {os.cpu_count()} cores, -j {j}, median of {args.runs} runs, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    tmp = Path(tempfile.mkdtemp(prefix="fhirpkg-scale-"))
    try:
        bulk = tmp / "bulk.ndjson"
        n = bulk_ndjson.write(bulk, args.resources)
        subprocess.run([FHIRPKG, "validate", "-j", "1", str(bulk)], capture_output=True)  # warm caches
        print(f"1. bulk clinical NDJSON, {n} resources ({bulk.stat().st_size / 2**20:.0f} MB):")
        one = median_run(["validate", "-j", "1", str(bulk)], args.runs)
        many = median_run(["validate", "-j", j, str(bulk)], args.runs)
        print(line("-j 1", n, one))
        print(line(f"-j {j}", n, many))
        print(f"   speed-up -j {j} / -j 1: x{one['wall'] / many['wall']:.2f} wall")
        big = tmp / "bulk4.ndjson"
        with open(big, "wb") as f:
            for _ in range(4):
                f.write(bulk.read_bytes())
        r4 = run(["validate", "-j", "1", str(big)])
        print(f"2. streaming: peak RSS {one['rss']:.0f} MB for {bulk.stat().st_size / 2**20:.0f} MB, "
              f"{r4['rss']:.0f} MB for {big.stat().st_size / 2**20:.0f} MB  (flat = streamed)")
        if args.examples:
            from fhirpkg.fhir import packages as pk
            folder = pk.ensure([pk.R5_EXAMPLES])[0].folder
            count = len(pk.resource_files(folder))
            print(f"3. all R5 examples ({count} files, every layer):")
            e1 = median_run(["validate", "-j", "1", str(folder)], args.runs)
            en = median_run(["validate", "-j", j, str(folder)], args.runs)
            print(line("-j 1", count, e1))
            print(line(f"-j {j}", count, en))
            print(f"   speed-up: x{e1['wall'] / en['wall']:.2f} wall")
        if args.build:
            build_figures(args, tmp)
        if args.spark:
            sbulk, sn_res, jn = bulk, n, many
            if args.spark_resources and args.spark_resources != args.resources:
                sbulk = tmp / "spark.ndjson"
                sn_res = bulk_ndjson.write(sbulk, args.spark_resources)
                jn = median_run(["validate", "-j", j, str(sbulk)], args.runs)
            print(f"5. Apache Spark, bulk clinical NDJSON, {sn_res} resources "
                  f"({sbulk.stat().st_size / 2**20:.0f} MB; JVM start included):")
            s1 = median_run(["validate", "--spark", "local[1]", str(sbulk)], args.runs)
            sn = median_run(["validate", "--spark", f"local[{j}]", str(sbulk)], args.runs)
            print(line("local[1]", sn_res, s1))
            print(line(f"local[{j}]", sn_res, sn))
            print(line(f"-j {j}", sn_res, jn))
            print(f"   executors 1 -> {j}: x{s1['wall'] / sn['wall']:.2f} wall; Spark local[{j}] / -j {j}: "
                  f"x{sn['wall'] / jn['wall']:.2f} wall")
        if args.cold:
            cold_figures(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def cold_figures(args, tmp: Path) -> None:
    import vs_hl7
    files = sorted(p for p in (ROOT / "definitions").rglob("*.json") if p.name != "package.json")
    hl7 = [vs_hl7.measure(vs_hl7.hl7_cmd(files, tmp / "list.txt", [str(ROOT / "definitions")],
                                         ["-allow-example-urls", "true"])) for _ in range(args.runs)]
    ours = [vs_hl7.measure([FHIRPKG, "validate", str(ROOT / "definitions"), "--format", "json"])
            for _ in range(args.runs)]
    hw, fw = statistics.median(r["wall"] for r in hl7), statistics.median(r["wall"] for r in ours)
    print(f"6. cold start, definitions/ ({len(files)} files), fresh processes: HL7 validator {hw:.2f} s, "
          f"fhirpkg {fw:.2f} s, x{hw / fw:.1f}  [aim: x25]")


def build_figures(args, tmp: Path) -> None:
    import build as build_bench
    from fhirpkg import api
    from fhirpkg.publish import build as b
    defs = api.load_definitions(log=None)
    proj = build_bench.generate_project(args.build_size, tmp / "gen")
    print(f"4. build of a generated project of {args.build_size} resources (in-process, validate + lay out):")
    for jobs in (1, args.jobs):
        walls, cpus = [], []
        for _ in range(args.runs):
            t, c = time.perf_counter(), _cpu()
            b.build(proj, defs=defs, force=True, site=True, jobs=jobs)
            walls.append(time.perf_counter() - t)
            cpus.append(_cpu() - c)
        print(f"   jobs {jobs}: {statistics.median(walls):7.1f} s wall, {statistics.median(cpus):7.1f} s CPU "
              f"({', '.join(f'{w:.1f}' for w in walls)})")
    build_bench.print_incremental(f"{args.build_size} generated resources",
                                  build_bench.incremental(proj, args.runs))


def _cpu() -> float:
    import resource
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


if __name__ == "__main__":
    sys.exit(main())
