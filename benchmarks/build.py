#!/usr/bin/env python3
"""Build time of the package and of generated larger projects, printed (never asserted).

1. `fhirpkg build` of definitions/ in a fresh process (cold: definitions cache warm, Python cold),
   median of --runs runs;
2. in-process build (validate + lay out + write), median of --runs runs, of generated projects of
   1,000, 5,000 and 10,000 resources (copies of the package's resources under new ids, references
   rewired), to show how build time grows with size.  Aim: package <= 2 s, 10,000 resources
   <= 20 s, linear.  The few validation errors they report are real: the last copy is cut off at
   the size asked for, so some of its references point at copies that were never generated.

3. incremental: `fhirpkg build` with the build cache on a copy of definitions/ and on generated
   projects (--incremental package,1000): rebuild with nothing changed, and after one edited
   resource, against a clean --no-cache build (whose output it must equal).  Aim: <= 1 s.

Usage: python benchmarks/build.py [--runs 3] [--sizes 1000,5000,10000] [--no-site] [--incremental package,1000]
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
FHIRPKG = ROOT / ".venv" / "bin" / "fhirpkg"


def cold_package(runs: int) -> list[float]:
    # as `make setup` does: with PYTHONDONTWRITEBYTECODE set, stale .pyc files would recompile every run
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "fhirpkg")], check=False)
    out = Path(tempfile.mkdtemp(prefix="fhirpkg-bench-build-"))
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run([str(FHIRPKG), "build", "--no-cache", "--out", str(out / "build")], cwd=ROOT,
                              capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise SystemExit(f"build failed: {proc.stderr}")
    shutil.rmtree(out, ignore_errors=True)
    return times


def generate_project(size: int, dest: Path) -> Path:
    """A project of ``size`` resources: the package's own, copied under new ids."""
    src = ROOT / "definitions"
    proj = dest / "definitions"
    proj.mkdir(parents=True)
    manifest = json.loads((src / "package.json").read_text())
    (proj / "package.json").write_text(json.dumps(manifest))
    canonical = manifest["canonical"]
    originals = [json.loads(p.read_text()) for p in sorted(src.rglob("*.json")) if p.name != "package.json"]
    originals = [r for r in originals if r["resourceType"] != "Library"]  # the manifest lists the originals only
    n = 0
    copy = 0
    while n < size:
        for r in originals:
            if n >= size:
                break
            suffix = f"-c{copy}" if copy else ""
            text = json.dumps(r)
            for o in originals:  # rewire canonicals and references to this copy's resources
                text = text.replace(f"{canonical}/{o['resourceType']}/{o['id']}\"",
                                    f"{canonical}/{o['resourceType']}/{o['id']}{suffix}\"")
                text = text.replace(f"\"{o['resourceType']}/{o['id']}\"", f"\"{o['resourceType']}/{o['id']}{suffix}\"")
            res = json.loads(text)
            res["id"] = f"{r['id']}{suffix}"
            if "url" in res:
                res["url"] = f"{canonical}/{res['resourceType']}/{res['id']}"
            if "name" in res and isinstance(res["name"], str):
                res["name"] = res["name"] + (f"C{copy}" if copy else "")
            for ident in res.get("identifier") or []:
                if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                    ident["value"] += suffix
            folder = proj / res["resourceType"]
            folder.mkdir(exist_ok=True)
            (folder / f"{res['id']}.json").write_text(json.dumps(res, indent=2))
            n += 1
        copy += 1
    return proj


def in_process(size: int, site: bool) -> dict:
    from fhirpkg import api
    from fhirpkg.publish import build as b
    defs = api.load_definitions(log=None)
    tmp = Path(tempfile.mkdtemp(prefix="fhirpkg-bench-gen-"))
    proj = generate_project(size, tmp)
    t = time.perf_counter()
    result = b.build(proj, defs=defs, force=True, site=site)
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    b.write(result, tmp / "build")
    t_write = time.perf_counter() - t
    errors = sum(1 for i in result.issues if i.is_error)
    shutil.rmtree(tmp, ignore_errors=True)
    return {"size": size, "build": t_build, "write": t_write, "files": len(result.files), "errors": errors}


def incremental(project: Path, runs: int) -> dict:
    """``fhirpkg build`` in a fresh process: a clean ``--no-cache`` build (after one that fills the
    temporary cache folder's compiled definitions and FHIRPath parse trees, so that what follows
    measures the build cache alone), the first cached build (fills the build cache), rebuilds with nothing
    changed, and rebuilds after one edited resource (a PlanDefinition's title).  The last rebuild's
    output is compared with a clean build of the edited project."""
    tmp = Path(tempfile.mkdtemp(prefix="fhirpkg-bench-cache-"))
    out = tmp / "out"
    env = {**os.environ, "FHIRPKG_CACHE_DIR": str(tmp / "cache")}

    def cli(*extra: str) -> float:
        t = time.perf_counter()
        proc = subprocess.run([str(FHIRPKG), "build", "--force", "--project", str(project), *extra], cwd=ROOT,
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"build failed: {proc.stderr[-2000:]}")
        return time.perf_counter() - t

    cli("--no-cache", "--out", str(tmp / "clean"))  # fills this cache folder's definitions, parse trees
    clean = cli("--no-cache", "--out", str(tmp / "clean"))
    first = cli("--out", str(out))
    same = [cli("--out", str(out)) for _ in range(runs)]
    target = sorted((project / "PlanDefinition").glob("*.json"))[0]
    edited = []
    for n in range(runs):
        value = json.loads(target.read_text())
        value["title"] = f"{value.get('title', '')} (edit {n})"
        target.write_text(json.dumps(value, indent=2))
        edited.append(cli("--out", str(out)))
    cli("--no-cache", "--out", str(tmp / "clean"))  # of the edited project, to compare with
    identical = not subprocess.run(["diff", "-rq", str(out), str(tmp / "clean")], capture_output=True).returncode
    shutil.rmtree(tmp, ignore_errors=True)
    return {"first": first, "same": same, "edited": edited, "clean": clean, "identical": identical}


def print_incremental(label: str, r: dict) -> None:
    med = statistics.median
    print(f"   {label}: clean (--no-cache) {r['clean']:.2f} s; first cached build {r['first']:.2f} s; "
          f"rebuild, nothing changed: median {med(r['same']):.2f} s ({', '.join(f'{t:.2f}' for t in r['same'])}); "
          f"after one edited resource: median {med(r['edited']):.2f} s "
          f"({', '.join(f'{t:.2f}' for t in r['edited'])}); output identical to the clean build: "
          f"{'yes' if r['identical'] else 'NO'}  [aim: <= 1 s]")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="1000,5000,10000")
    ap.add_argument("--no-site", action="store_true", help="leave the website out of the generated builds")
    ap.add_argument("--incremental", default="package,1000",
                    help="projects for the incremental figures: 'package' (a copy of definitions/) and/or sizes")
    args = ap.parse_args()
    cold = cold_package(args.runs)
    print(f"1. fhirpkg build of definitions/ ({len(list((ROOT / 'definitions').rglob('*.json'))) - 1} resources), "
          f"fresh process: median {statistics.median(cold):.2f} s ({', '.join(f'{t:.2f}' for t in cold)})  "
          f"[aim: <= 2 s]")
    print("2. generated projects (in-process; validate + lay out, then write):")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        runs = [in_process(size, not args.no_site) for _ in range(args.runs)]
        r = sorted(runs, key=lambda x: x["build"] + x["write"])[len(runs) // 2]  # the median run
        rows.append(r)
        per_k = (r["build"] + r["write"]) / size * 1000
        totals = ", ".join(f"{x['build'] + x['write']:.1f}" for x in runs)
        print(f"   {size:6d} resources: build {r['build']:6.1f} s + write {r['write']:5.1f} s = "
              f"{r['build'] + r['write']:6.1f} s, median of {len(runs)} ({totals}) "
              f"({per_k:.2f} s per 1,000; {r['files']} files; {r['errors']} validation errors)")
    if len(rows) > 1:
        a, z = rows[0], rows[-1]
        ratio = ((z["build"] + z["write"]) / z["size"]) / ((a["build"] + a["write"]) / a["size"])
        print(f"   time per resource at {z['size']} vs {a['size']}: x{ratio:.2f} (1.00 = linear)  "
              f"[aim: 10,000 in <= 20 s]")
    print("3. incremental builds (fhirpkg build, fresh process, build cache in a temporary folder):")
    for what in filter(None, args.incremental.split(",")):
        tmp = Path(tempfile.mkdtemp(prefix="fhirpkg-bench-inc-"))
        if what == "package":
            project = tmp / "definitions"
            shutil.copytree(ROOT / "definitions", project)
            label = f"definitions/ ({len(list(project.rglob('*.json'))) - 1} resources)"
        else:
            project = generate_project(int(what), tmp)
            label = f"{int(what)} generated resources"
        print_incremental(label, incremental(project, args.runs))
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
