#!/usr/bin/env python3
"""docs/r4.md: what the R4 export carries of the R5 content, per resource type (issue 12 item 5).

Runs ``fhirpkg build``'s pipeline in memory on definitions/ (R5 and the R4 export only, no site,
nothing written to build/) and renders the fidelity table of fhirpkg.publish.convert.fidelity.
tests/publish/test_convert.py fails when the committed docs/r4.md differs from what this renders.

Usage: python scripts/r4_fidelity.py [--check]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "r4.md"
sys.path.insert(0, str(ROOT))

from fhirpkg import fsutil  # noqa: E402
from fhirpkg.publish import build  # noqa: E402
from fhirpkg.publish.convert import fidelity  # noqa: E402


def render(project: Path = ROOT / "definitions") -> str:
    result = build.build(project, fhir_versions=(build.R5, build.R4), site=False, jobs=1)
    export = result.report["exports"][build.R4]
    rows = [fidelity.Row(**r) for r in export["fidelity"]]
    return fidelity.markdown(rows, package=result.report["package"]["name"] + "#"
                             + result.report["package"]["version"], losses=export["losses"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed docs/r4.md differs")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC.relative_to(ROOT)} is stale: run python scripts/r4_fidelity.py", file=sys.stderr)
            return 1
        print(f"{DOC.relative_to(ROOT)} is up to date")
        return 0
    fsutil.atomic_write_text(DOC, text)
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
