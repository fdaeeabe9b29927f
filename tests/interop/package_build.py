"""One build of definitions/ for the interop tests (into a temporary folder, never build/)."""
from __future__ import annotations

import functools
import tarfile
import tempfile
from pathlib import Path

from fhirpkg.packages import resource_files

ROOT = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def built() -> Path:
    """Build definitions/ once per test session; returns the output folder."""
    from fhirpkg import build as b

    out = Path(tempfile.mkdtemp(prefix="fhirpkg-interop-build-")) / "build"
    b.write(b.build(ROOT / "definitions"), out)
    with tarfile.open(out / "package.tgz") as tar:
        tar.extractall(out.parent / "package-tgz", filter="data")
    return out


def transaction(out: Path) -> Path:
    return next(p for p in out.glob("*.transaction.json"))


def package_resources(out: Path) -> list[Path]:
    folder = out.parent / "package-tgz" / "package"
    return resource_files(folder)
