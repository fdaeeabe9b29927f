"""``fhirpkg.load``: a package's resources for Python code, raw with their source positions or as
fhir.resources models.

Reads what ``fhirpkg validate`` reads, with the same readers (``inputs``): a folder (a content
project such as ``definitions/``), a package ``.tgz``, a Bundle (its entries), NDJSON, or a
``build/`` folder (its collection Bundle; ``build/r4b`` gives the R4B export).  fhir.resources is
a parser here, not a validator: ``fhirpkg.validate`` says whether the content is valid.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhirpkg.errors import InputError
from fhirpkg.fhir.inputs import Source, find_sources, read_source
from fhirpkg.issues import Issue
from fhirpkg.fhir.jsonsource import Document

R5, R4B, R4 = "5.0.0", "4.3.0", "4.0.1"
BUILD_REPORT = "build-report.json"


@dataclass(frozen=True)
class Resource:
    """One resource as read: its JSON, the document it came from and where in that document."""

    json: dict
    document: Document
    location: tuple = ()  # () for a whole document; ("entry", 3, "resource") for a Bundle entry
    fhir_version: str = R5

    type = property(lambda self: self.json.get("resourceType"))
    id = property(lambda self: self.json.get("id"))
    file = property(lambda self: self.document.file)

    @property
    def key(self) -> str:
        return f"{self.type}/{self.id}"

    def position(self, *path) -> tuple[int | None, int | None]:
        """Line and column of an element, e.g. ``position("action", 0, "title")``."""
        return self.document.locate(self.location + path)

    def model(self):
        return to_model(self.json, self.fhir_version)


@dataclass
class Package:
    """The resources found under one path, and the problems met while reading them."""

    path: str
    resources: list[Resource] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)  # unreadable files, invalid JSON: reading only

    def get(self, key: str) -> Resource:
        """The resource ``Type/id``; ``KeyError`` naming what is there when it is missing."""
        for r in self.resources:
            if r.key == key:
                return r
        kind = key.split("/", 1)[0]
        have = sorted(r.key for r in self.resources if r.type == kind)[:5]
        raise KeyError(f"{key} is not in {self.path}" + (f" (it has {', '.join(have)}, ...)" if have else ""))

    def model(self, key: str):
        """``"PlanDefinition/nepc-pathway"`` as a fhir.resources model (R5, or R4B for R4B input)."""
        return self.get(key).model()

    def models(self, resource_type: str) -> list:
        """Every resource of one type, as fhir.resources models, in file order."""
        return [r.model() for r in self.resources if r.type == resource_type]


def to_model(resource: dict, fhir_version: str = R5):
    """A resource dict as a fhir.resources model: R5 (``fhir.resources``), R4B (``fhir.resources.R4B``).

    Also for what ``fhirpkg`` computes (e.g. the resources ``fhirpkg.apply`` returns).  fhir.resources
    has no R4 models; its own pydantic error says what it could not parse.
    """
    if fhir_version == R4B:
        from fhir.resources.R4B import get_fhir_model_class
    elif fhir_version == R5:
        from fhir.resources import get_fhir_model_class
    else:
        raise ValueError(f"no fhir.resources models for FHIR {fhir_version} (R5 and R4B only)")
    return get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def load(path: str | Path) -> Package:
    """The resources under ``path``: folder, package .tgz, Bundle, NDJSON or build/ folder.

    Raises ``InputError`` when the path does not exist or holds nothing to read.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: no such file or folder")
    package = Package(str(path))
    for src in find_sources([str(_build_bundle(p) or p)]):
        _read(src, package)
    return package


def _build_bundle(folder: Path) -> Path | None:
    """A ``fhirpkg build`` output folder (or its r4b/, r4/) stands for its collection Bundle."""
    if not folder.is_dir() or not any((d / BUILD_REPORT).is_file() for d in (folder, folder.parent)):
        return None
    found = sorted(folder.glob("*.collection*.json"))
    return found[0] if len(found) == 1 else None


def _read(src: Source, package: Package) -> None:
    version = src.fhir_version
    for doc in read_source(src):
        package.issues.extend(doc.issues)
        value: Any = doc.value
        if not doc.ok or not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            continue
        if value["resourceType"] != "Bundle":
            package.resources.append(Resource(value, doc, (), version))
            continue
        for n, entry in enumerate(value.get("entry") or ()):
            res = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(res, dict) and isinstance(res.get("resourceType"), str):
                package.resources.append(Resource(res, doc, ("entry", n, "resource"), version))
