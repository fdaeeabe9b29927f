"""Adoption: the content project under the adopter's own canonical base, publisher and version.

Every adopter publishes the content under a canonical base of their own.  ``adopt`` writes a copy
of the project in which the old base is replaced everywhere it occurs (``url``, canonical
references, identifier systems, narrative and markdown text), the package name follows the base
when it was derived from it (``http://example.org/fhir/nepc`` -> ``org.example.fhir.nepc``), and
the publisher and version change where they name the package's own.  The build then runs on the
copy, so every output (R5, R4B, R4, package, site) is generated from rebased sources.

Numbers are kept as written (the project's own JSON reader and writer), nothing else changes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from fhirpkg.errors import PackageError
from fhirpkg.fsutil import atomic_write_text
from fhirpkg.logic import translate
from fhirpkg.content.project import MANIFEST, PACKAGE_NAME, SEMVER, load
from fhirpkg.fhir.serialize import dumps

ARTIFACT_VERSION = "http://hl7.org/fhir/StructureDefinition/artifact-version"
ARTIFACT_PUBLISHER = "http://hl7.org/fhir/StructureDefinition/artifact-publisher"  # on types without .publisher
_CANONICAL = re.compile(r"^https?://[^\s|#?]+[^/\s|#?]$")


class AdoptionError(PackageError):
    """The adoption options cannot be applied (a bad URL or version, a name that cannot be derived)."""


@dataclass(frozen=True)
class Adoption:
    """What changes: each ``old_*`` becomes its ``new_*`` (equal when unchanged)."""

    old_base: str
    new_base: str
    old_name: str
    new_name: str
    old_version: str
    new_version: str
    publisher: str | None = None
    #: canonicals (new base, no version) of Libraries that carry CQL: their version is the CQL
    #: library's own (``library X version '…'``), which adoption does not change, nor pins to them
    logic_libraries: frozenset[str] = frozenset()

    def text(self, s: str) -> str:
        """A string with the package's base, name and ``name#version`` replaced."""
        if self.old_name != self.new_name or self.old_version != self.new_version:
            s = s.replace(f"{self.old_name}#{self.old_version}", f"{self.new_name}#{self.new_version}")
        if self.old_base != self.new_base:
            s = _bounded(self.old_base).sub(lambda m: self.new_base, s)
        if self.old_name != self.new_name:
            s = _bounded(self.old_name).sub(lambda m: self.new_name, s)
        if self.old_version != self.new_version and s.startswith(self.new_base + "/") \
                and s.endswith("|" + self.old_version) and s[: -len(self.old_version) - 1] not in self.logic_libraries:
            s = s[: -len(self.old_version)] + self.new_version  # a canonical pinned to the package version
        return s


def _bounded(word: str) -> re.Pattern:
    """``word`` not followed by a character that would make it part of a longer name or path."""
    return re.compile(re.escape(word) + r"(?![A-Za-z0-9_\-])")


def package_name_for(canonical: str) -> str | None:
    """The package name a canonical base gives: reversed host, then the path
    (``https://their.org/fhir/nepc`` -> ``org.their.fhir.nepc``); None if that is not a valid name."""
    m = re.match(r"^https?://([^/:]+)(?::\d+)?(/.*)?$", canonical)
    if not m:
        return None
    parts = list(reversed(m.group(1).lower().split("."))) + [p for p in (m.group(2) or "").lower().split("/") if p]
    parts = [re.sub(r"[^a-z0-9\-]", "-", p) for p in parts]
    name = ".".join(parts)
    return name if PACKAGE_NAME.match(name) else None


def plan(manifest: dict, canonical: str | None = None, publisher: str | None = None,
         version: str | None = None) -> Adoption:
    """The changes for this manifest and these options; AdoptionError says what is wrong."""
    old_base = str(manifest.get("canonical") or "").rstrip("/")
    old_name, old_version = str(manifest.get("name") or ""), str(manifest.get("version") or "")
    new_base = (canonical or old_base).rstrip("/")
    if not _CANONICAL.match(new_base):
        raise AdoptionError(f"--canonical {canonical}: not a canonical base URL (http(s)://host/path, "
                            "no query, fragment or '|')")
    new_version = version or old_version
    if not SEMVER.match(new_version):
        raise AdoptionError(f"--version {version}: not SemVer (major.minor.patch[-label])")
    new_name = old_name
    if new_base != old_base and package_name_for(old_base) == old_name:
        new_name = package_name_for(new_base) or ""
        if not new_name:
            raise AdoptionError(f"--canonical {canonical}: the package name is derived from the canonical base "
                                f"({old_base} -> {old_name}), but {new_base} gives no valid package name")
    if publisher is not None and not publisher.strip():
        raise AdoptionError("--publisher: give a non-empty name")
    return Adoption(old_base, new_base, old_name, new_name, old_version, new_version, publisher)


def adopt_value(value, a: Adoption, top: bool = True):
    """A copy of a resource (or manifest part) with the adoption applied."""
    if isinstance(value, str):
        return a.text(value)
    if isinstance(value, list):
        return [adopt_value(v, a, False) for v in value]
    if not isinstance(value, dict):
        return value  # numbers (exact lexemes), booleans, null
    out = {k: adopt_value(v, a, False) for k, v in value.items()}
    if "resourceType" in value:  # a resource (top level or contained): its own metadata
        if value.get("version") == a.old_version and out.get("url") not in a.logic_libraries:
            out["version"] = a.new_version
        if a.publisher is not None and isinstance(value.get("publisher"), str):
            out["publisher"] = a.publisher
    if value.get("url") == ARTIFACT_VERSION and value.get("valueString") == a.old_version:
        out["valueString"] = a.new_version
    if value.get("url") == ARTIFACT_PUBLISHER and a.publisher is not None and "valueString" in value:
        out["valueString"] = a.publisher
    return out


def adopt_manifest(manifest: dict, a: Adoption) -> dict:
    out = adopt_value(manifest, a)
    out["name"], out["version"], out["canonical"] = a.new_name, a.new_version, a.new_base
    if a.publisher is not None:
        out["author"] = a.publisher
    return out


def adopt(project_root: str | Path, dest: str | Path, canonical: str | None = None,
          publisher: str | None = None, version: str | None = None) -> Adoption:
    """Write the adopted copy of ``project_root`` into ``dest`` (created; should be empty).

    Name ``dest`` like the project folder: the build reports files relative to the folder's parent.
    """
    root, dest = Path(project_root), Path(dest)
    project = load(root)
    if project.manifest is None:
        raise AdoptionError(f"{root} is not a content project (no readable {MANIFEST})")
    bad = [i for i in project.issues if i.is_error and i.rule in ("json-syntax", "manifest-invalid")]
    if bad:
        raise AdoptionError(f"{bad[0].file}: {bad[0].message} (fix the project before adopting it)")
    a = plan(project.manifest.data, canonical, publisher, version)
    logic = [r for r in project.resources if r.type == "Library" and isinstance(r.url, str)
             and translate.attachment(r.json, translate.CQL_TYPE) is not None]
    a = dataclasses.replace(a, logic_libraries=frozenset(a.text(r.url) for r in logic))
    dest.mkdir(parents=True, exist_ok=True)
    # CQL sources under the new base: the build then finds each Library's text/cql stale and has the
    # official translator make the ELM again (value set urls live in the CQL and its ELM)
    for src in translate.cql_sources(root):
        target = dest / src.resolve().relative_to(root.resolve())
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, a.text(src.read_text(encoding="utf-8")))
    atomic_write_text(dest / MANIFEST, dumps(adopt_manifest(project.manifest.data, a)) + "\n")
    for r in project.resources:
        target = dest / r.path.resolve().relative_to(root.resolve())
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, dumps(adopt_value(r.json, a)) + "\n")
    return a


@contextlib.contextmanager
def adopted(project_root: str | Path, canonical: str | None = None, publisher: str | None = None,
            version: str | None = None) -> Iterator[tuple[Path, Adoption]]:
    """The adopted copy in a temporary folder (removed afterwards) and what changed."""
    with tempfile.TemporaryDirectory(prefix="fhirpkg-adopt-") as tmp:
        dest = Path(tmp) / Path(project_root).resolve().name
        yield dest, adopt(project_root, dest, canonical, publisher, version)


__all__ = ["adopted", "Adoption", "AdoptionError", "adopt", "adopt_manifest", "adopt_value", "package_name_for", "plan"]
