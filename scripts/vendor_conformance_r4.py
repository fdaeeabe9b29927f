#!/usr/bin/env python3
"""Copy the R4 JSON cases of the HL7 validator test suite into tests/conformance (run once per update).

Source: a clone of https://github.com/FHIR/fhir-test-cases (Apache-2.0).  Kept: the manifest's
cases with version 4.0 or 4.0.1 whose instance is JSON and that are not switched off
(``use-test: false``), with their supporting files and the HL7 validator's recorded outcomes.

Usage: python scripts/vendor_conformance_r4.py CLONE [COMMIT]
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "tests" / "conformance" / "fhir-test-cases" / "validator-r4"


def wanted(case: dict) -> bool:
    return case.get("version") in ("4.0", "4.0.1") and case["file"].endswith(".json") \
        and case.get("use-test") is not False


def files_of(case: dict) -> set[str]:
    out = {case["file"]}
    for key in ("supporting", "profiles", "supporting5"):
        out.update(case.get(key) or ())
    if isinstance(case.get("java"), str):
        out.add("outcomes/" + case["java"])
    for pkg in case.get("packages") or ():
        if pkg.endswith(".tgz"):  # a package archive inside the suite (its dependencies sit beside it)
            out.add(pkg)
    prof = case.get("profile") or {}
    if prof:
        out.add(prof["source"])
        out.update(prof.get("supporting") or ())
        if isinstance(prof.get("java"), str):
            out.add("outcomes/" + prof["java"])
    return out


def main(argv: list[str]) -> int:
    clone, commit = Path(argv[1]), (argv[2] if len(argv) > 2 else "HEAD")
    git = ["git", "--git-dir", str(clone if clone.name == "repo" or clone.suffix == ".git" else clone / ".git")]
    commit = subprocess.run([*git, "rev-parse", commit], capture_output=True, text=True, check=True).stdout.strip()
    manifest = json.loads(subprocess.run([*git, "show", f"{commit}:validator/manifest.json"],
                                         capture_output=True, check=True).stdout)
    listed = set(subprocess.run([*git, "ls-tree", "-r", "--name-only", commit, "validator/"],
                                capture_output=True, text=True, check=True).stdout.split("\n"))
    cases = [c for c in manifest["test-cases"] if wanted(c)]
    copied, missing = 0, []
    names = set().union(*(files_of(c) for c in cases))
    folders = {n.rsplit("/", 1)[0] for n in names if n.endswith(".tgz") and "/" in n}
    names |= {p[len("validator/"):] for p in listed if p.endswith(".tgz") and p[len("validator/"):].rsplit("/", 1)[0] in folders}
    for name in sorted(names):
        if f"validator/{name}" not in listed:
            continue  # a URL or a file the suite lacks: the runner reports the case as skipped
        proc = subprocess.run([*git, "show", f"{commit}:validator/{name}"], capture_output=True)
        if proc.returncode != 0:
            missing.append(name)  # listed but absent from the clone (a partial snapshot)
            continue
        data = proc.stdout
        target = DEST / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        copied += 1
    doc = [f"Filtered copy: R4 (version 4.0/4.0.1) JSON cases only, from FHIR/fhir-test-cases commit {commit} "
           "(Apache-2.0), by scripts/vendor_conformance_r4.py."] + list(manifest.get("documentation") or [])[1:]
    out = {"documentation": doc, "modules": manifest.get("modules"), "versions": manifest.get("versions"),
           "test-cases": cases}
    (DEST / "manifest.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(cases)} cases, {copied} files -> {DEST}; absent from the clone: {', '.join(missing) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
