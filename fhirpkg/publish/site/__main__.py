"""``python -m fhirpkg.publish.site [definitions] [-o DIR] [--runs N]``: preview and measure the site.

Builds in memory (like ``fhirpkg build --force``), writes the whole build to DIR
(a new temporary folder by default, never ``build/``) so the site's download
links resolve, and prints the page count, the site's size and how long
``generate`` takes (wall and CPU time, best of N runs on the same inputs:
CPU time stays meaningful on a busy machine).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fhirpkg.publish.site", description=__doc__.split("\n\n")[0])
    ap.add_argument("project", nargs="?", default="definitions")
    ap.add_argument("-o", "--out", help="folder to write the build to (default: a new temporary folder)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of generate (default 5)")
    args = ap.parse_args(argv)

    from fhirpkg.publish import build as b
    from fhirpkg.publish import site

    captured: dict = {}
    real = site.generate

    def spy(**kw):
        captured.update(kw)
        return real(**kw)

    site.generate = spy
    try:
        t0 = time.perf_counter()
        result = b.build(args.project, force=True)
        total = time.perf_counter() - t0
    finally:
        site.generate = real
    times, cpu = [], []
    for _ in range(max(1, args.runs)):
        t0, c0 = time.perf_counter(), time.process_time()
        real(**captured)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="fhirpkg-site-")) / "build"
    b.write(result, out)
    files = {k: v for k, v in result.files.items() if k.startswith("site/")}
    pages = [k for k in files if k.endswith(".html")]
    print(f"site: {len(pages)} pages, {len(files)} files, {sum(map(len, files.values())):,} bytes")
    print(f"generate: best {min(times) * 1000:.0f} ms, median {sorted(times)[len(times) // 2] * 1000:.0f} ms wall, "
          f"best {min(cpu) * 1000:.0f} ms CPU over {len(times)} runs (whole build {total:.1f} s)")
    print(f"open {(out / 'site' / 'index.html').resolve().as_uri()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
