#!/usr/bin/env python3
"""Measure the interop tools: HL7 validator runs and HAPI server start-up (see docs/interop.md).

    python benchmarks/hl7_probe.py validator FILE... [--java-opts '-Xmx3g -XX:+UseSerialGC'] [--sources LIST]
    python benchmarks/hl7_probe.py hapi [--java-opts '-Xmx2g -XX:TieredStopAtLevel=1 -XX:+UseSerialGC']

Prints wall time, CPU time (user+sys), peak RSS and the load average, so figures taken on a shared
machine can be read with their context.  The validator run is one JVM for all files (``-sources``);
its own summary line (load_ms, validate_ms) is printed too.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from interop import hapi, hl7  # noqa: E402


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def probe_validator(files: list[str], java_opts: list[str], extra: list[str]) -> None:
    cmd = hl7.base_command(extra_args=extra)
    java_at = 1
    cmd[java_at:java_at + len(hl7.java_opts())] = java_opts  # replace the default JVM options
    with tempfile.TemporaryDirectory() as tmp:
        lst = Path(tmp) / "sources.txt"
        lst.write_text("\n".join(str(Path(f).resolve()) for f in files) + "\n")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        proc = subprocess.run([*cmd, "-sources", str(lst), "-output", str(Path(tmp) / "out.json")],
                              capture_output=True, text=True)
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = [line for line in proc.stderr.splitlines() if "summary:" in line]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"validator: {len(files)} files, exit {proc.returncode}, wall {wall:.1f} s, cpu {cpu:.1f} s, "
          f"max RSS {after.ru_maxrss / 1024:.0f} MiB, load {loadavg()}, opts {java_opts}")
    for line in summary:
        print("  " + line)


def probe_hapi(java_opts: list[str]) -> None:
    server = hapi.HapiServer(java_opts=java_opts)
    server.start()
    try:
        st = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
        hwm = [ln for ln in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines()
               if ln.startswith(("VmHWM", "VmRSS"))]
        print(f"hapi: healthy after {server.start_seconds:.1f} s wall, cpu {cpu:.1f} s, "
              f"{' '.join(' '.join(h.split()) for h in hwm)}, load {loadavg()}, opts {java_opts}")
        t0 = time.monotonic()
        urllib.request.urlopen(f"{server.base_url}/metadata", timeout=120).read()
        print(f"  GET /metadata (warm) {time.monotonic() - t0:.2f} s")
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    v = sub.add_parser("validator")
    v.add_argument("files", nargs="*")
    v.add_argument("--sources", help="file with one path per line")
    v.add_argument("--java-opts", default=" ".join(hl7.DEFAULT_JAVA_OPTS))
    v.add_argument("--extra", default="", help="extra validator options, e.g. '-no-preload'")
    h = sub.add_parser("hapi")
    h.add_argument("--java-opts", default=" ".join(hapi.DEFAULT_JAVA_OPTS))
    args = ap.parse_args(argv)
    if args.what == "validator":
        files = list(args.files)
        if args.sources:
            files += [ln.strip() for ln in Path(args.sources).read_text().splitlines() if ln.strip()]
        if not files:
            ap.error("no files")
        probe_validator(files, args.java_opts.split(), args.extra.split())
    else:
        probe_hapi(args.java_opts.split())
    return 0


if __name__ == "__main__":
    sys.exit(main())
