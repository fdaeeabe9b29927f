"""The content project: ``definitions/package.json`` and one resource per file.

Loading keeps each resource's source text and parsed value (numbers exact,
positions available), so later steps can report file:line:column and write the
resource back exactly as authored.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from fhirpkg.errors import InputError
from fhirpkg.fsutil import atomic_write_bytes, cache_root
from fhirpkg.fhir.inputs import find_sources, read_source
from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.jsonsource import Document

MANIFEST = "package.json"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
PACKAGE_NAME = re.compile(r"^[a-z][a-z0-9\-]*(\.[a-z][a-z0-9\-]*)+$")

#: JSON Schema for the FHIR NPM manifest as this project uses it (FHIR packages.html).
MANIFEST_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["name", "version", "canonical", "fhirVersions", "dependencies", "title", "description",
                 "author", "license"],
    "properties": {
        "name": {"type": "string", "pattern": PACKAGE_NAME.pattern, "not": {"pattern": "^hl7\\."}},
        "version": {"type": "string", "pattern": SEMVER.pattern},
        "canonical": {"type": "string", "pattern": "^https?://[^\\s|#?]+[^/\\s|#?]$"},
        "url": {"type": "string"},
        "type": {"enum": ["Conformance", "IG", "Core", "Examples", "Group", "Tool", "IG-Template", "Test"]},
        "fhirVersions": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "dependencies": {"type": "object", "propertyNames": {"pattern": PACKAGE_NAME.pattern},
                         "additionalProperties": {"type": "string", "pattern": "^[0-9A-Za-z][0-9A-Za-z.+-]*$"}},
        "title": {"type": "string", "minLength": 1},
        "description": {"type": "string", "minLength": 1},
        "author": {"type": "string", "minLength": 1},
        "license": {"type": "string", "minLength": 1},
        "jurisdiction": {"type": "string"},
        "date": {"type": "string", "pattern": "^\\d{14}$"},
    },
}


@dataclass
class Manifest:
    data: dict
    path: Path

    def _str(self, key: str) -> str:
        """A string field; any other JSON type counts as absent (the schema check reports it)."""
        value = self.data.get(key)
        return value if isinstance(value, str) else ""

    name = property(lambda self: self._str("name"))
    version = property(lambda self: self._str("version"))
    canonical = property(lambda self: self._str("canonical").rstrip("/"))
    title = property(lambda self: self._str("title"))
    description = property(lambda self: self._str("description"))

    @property
    def dependencies(self) -> dict[str, str]:
        deps = self.data.get("dependencies")
        return {k: v for k, v in deps.items() if isinstance(v, str)} if isinstance(deps, dict) else {}

    @property
    def fhir_versions(self) -> list[str]:
        v = self.data.get("fhirVersions")
        return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []

    @property
    def date(self) -> str:
        """The release date as FHIR dateTime (from ``date``: YYYYMMDDHHmmss)."""
        d = self._str("date")
        if re.fullmatch(r"\d{14}", d):
            return f"{d[0:4]}-{d[4:6]}-{d[6:8]}T{d[8:10]}:{d[10:12]}:{d[12:14]}Z"
        return ""


@dataclass
class ProjectResource:
    """One authored resource: where it came from and what it says."""

    path: Path
    doc: Document

    @property
    def json(self) -> dict:
        return self.doc.value

    type = property(lambda self: self.json.get("resourceType"))
    id = property(lambda self: self.json.get("id"))
    url = property(lambda self: self.json.get("url"))
    version = property(lambda self: self.json.get("version"))

    @property
    def key(self) -> str:
        return f"{self.type}/{self.id}"

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the source text: what the build cache keys this resource's work by."""
        return hashlib.sha256(self.doc.text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Project:
    root: Path
    manifest: Manifest | None
    resources: list[ProjectResource] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)  # problems found while loading
    #: The manifest's schema check when ``load(defer_manifest_check=True)`` left it to ``finish``.
    pending: "tuple[Manifest, Document, int] | None" = None

    def finish(self) -> None:
        """Run a deferred manifest check, its issues in the place ``load`` would have put them."""
        if self.pending is not None:
            manifest, doc, at = self.pending
            self.pending = None
            self.issues[at:at] = check_manifest(manifest, doc)

    def by_key(self) -> dict[str, ProjectResource]:
        return {r.key: r for r in self.resources}

    def canonical_for(self, resource_type: str, rid: str) -> str:
        return f"{self.manifest.canonical}/{resource_type}/{rid}"


def load(root: Path | str = "definitions", defer_manifest_check: bool = False) -> Project:
    """Read a project folder; unreadable parts become issues, never exceptions.

    ``defer_manifest_check`` leaves the manifest's schema check (importing jsonschema is a tenth of
    a cold start) to ``Project.finish``, which a caller runs while worker processes validate."""
    root = Path(root)
    project = Project(root, None)
    mpath = root / MANIFEST
    if not root.is_dir():
        project.issues.append(Issue(Severity.FATAL, "processing", f"No project folder at {root}", "project-missing",
                                    file=str(root)))
        return project
    if not mpath.is_file():
        project.issues.append(Issue(Severity.FATAL, "structure", f"{mpath} is missing: a content project needs its "
                                    "FHIR NPM manifest (name, version, canonical, dependencies)", "manifest-missing",
                                    file=str(mpath)))
    else:
        for doc in read_source(next(find_sources([str(mpath)]))):
            project.issues.extend(doc.issues)
            if doc.ok and isinstance(doc.value, dict):
                project.manifest = Manifest(doc.value, mpath)
                project.pending = (project.manifest, doc, len(project.issues))
                if not defer_manifest_check:
                    project.finish()
            elif doc.ok:
                project.issues.append(Issue(Severity.FATAL, "structure", "package.json must be a JSON object",
                                            "manifest-invalid", file=str(mpath), line=1, column=1))
    try:
        sources = list(find_sources([str(root)]))
    except InputError as e:  # a project that holds nothing is reported with the rest of its problems
        project.issues.append(Issue(Severity.WARNING, "processing", str(e), "input", file=str(root)))
        sources = []
    manifest_at = mpath.resolve()
    for src in sources:
        if src.path is not None and src.path.name == MANIFEST and src.path.resolve() == manifest_at:
            continue
        for doc in read_source(src):
            if not doc.ok:
                project.issues.extend(doc.issues)
                continue
            project.issues.extend(doc.issues)
            if not isinstance(doc.value, dict) or not isinstance(doc.value.get("resourceType"), str):
                project.issues.append(Issue(Severity.ERROR, "structure", "Not a FHIR resource (no resourceType)",
                                            "project-not-resource", file=doc.file, line=1, column=1))
                continue
            project.resources.append(ProjectResource(Path(doc.file), doc))
    project.resources.sort(key=lambda r: str(r.path))
    return project


def check_manifest(manifest: Manifest, doc: Document) -> list[Issue]:
    """The manifest against its schema, with each problem located in package.json."""
    out = [] if schema_passed(manifest.data) else schema_issues(manifest, doc)
    deps = manifest.data.get("dependencies")
    if isinstance(deps, dict) and deps.get("hl7.fhir.r5.core") != "5.0.0":
        line, col = doc.locate(("dependencies",))
        out.append(Issue(Severity.ERROR, "structure", "package.json dependencies must include "
                         "\"hl7.fhir.r5.core\": \"5.0.0\" (it defines the FHIR version)", "manifest-invalid",
                         file=doc.file, line=line, column=col))
    if manifest.data.get("fhirVersions") not in (["5.0.0"], None):
        line, col = doc.locate(("fhirVersions",))
        out.append(Issue(Severity.ERROR, "structure", "package.json fhirVersions must be [\"5.0.0\"]",
                         "manifest-invalid", file=doc.file, line=line, column=col))
    return out


def schema_issues(manifest: Manifest, doc: Document) -> list[Issue]:
    """What jsonschema finds wrong in the manifest; a pass is remembered (:func:`schema_passed`)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(MANIFEST_SCHEMA)
    out = []
    for err in sorted(validator.iter_errors(manifest.data), key=lambda e: list(e.absolute_path)):
        loc = tuple(err.absolute_path)
        where = ".".join(str(p) for p in loc) or "(root)"
        if err.validator == "not":
            msg = f"'{err.instance}' uses the hl7.* namespace, which is reserved for HL7"
        elif err.validator == "pattern" and loc == ("version",):
            msg = f"version '{err.instance}' is not SemVer (major.minor.patch[-label])"
        elif err.validator == "pattern" and loc == ("name",):
            msg = f"name '{err.instance}' is not a package name (two or more lowercase, dot-separated parts)"
        else:
            msg = err.message
        line, col = doc.locate(loc)
        out.append(Issue(Severity.ERROR, "structure", f"package.json {where}: {msg}", "manifest-invalid",
                         file=doc.file, line=line, column=col, location=loc))
    if not out:
        schema_passed(manifest.data, record=True)
    return out


def schema_passed(data, record: bool = False) -> bool:
    """Whether this very manifest (its JSON, under this schema) passed the schema check before.

    Importing jsonschema costs more than validating a whole small project, and a project's
    package.json rarely changes, so a pass is remembered in the cache folder (an empty file named
    by a digest of schema and manifest).  Failures are never remembered: their issues are computed
    afresh every time.  An unwritable cache only means that the check runs every time."""
    key = hashlib.sha256(json.dumps([MANIFEST_SCHEMA, data], sort_keys=True, ensure_ascii=False,
                                    default=repr).encode("utf-8", "surrogatepass")).hexdigest()
    marker = cache_root() / "manifest-checks" / key
    if not record:
        return marker.is_file()
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(marker, b"")
    except OSError:
        pass
    return True
