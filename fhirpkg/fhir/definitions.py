"""StructureDefinitions compiled for validation, indexed once and cached on disk.

Compiling the R5 snapshots (and the extension and terminology packages) takes a
few seconds; the result is pickled per StructureDefinition into one cache file
keyed by the packages' identities, and each definition is unpickled only when a
validation first needs it.  A cold CLI run therefore reads one file and touches
only the types its input uses.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import orjson

from fhirpkg.fsutil import cache_root
from fhirpkg.fhir.elements import (FHIRPATH_TYPES, build_json_index, compile_constraint, compile_contexts, compile_element,
                                   version_range)
from fhirpkg.fhir.model import ElementDef, TypeDef
from fhirpkg.fhir.packages import Package

#: Bump when the compiled form changes, so old caches are ignored.
MODEL_VERSION = "15"

REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
IMPLEMENTS_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-implements"
CANONICAL_TYPES = frozenset({
    "ActivityDefinition", "ActorDefinition", "CapabilityStatement", "ChargeItemDefinition", "Citation",
    "CodeSystem", "CompartmentDefinition", "ConceptMap", "ConditionDefinition", "EventDefinition", "Evidence",
    "EvidenceReport", "EvidenceVariable", "ExampleScenario", "GraphDefinition", "ImplementationGuide",
    "Library", "Measure", "MessageDefinition", "NamingSystem", "ObservationDefinition",
    "OperationDefinition", "PlanDefinition", "Questionnaire", "Requirements", "SearchParameter",
    "SpecimenDefinition", "StructureDefinition", "StructureMap", "SubscriptionTopic",
    "TerminologyCapabilities", "TestPlan", "TestScript", "ValueSet",
})


#: The FHIR version of each core package: the version the other loaded packages are read for.
CORE_PACKAGES = {"hl7.fhir.r5.core": "5.0.0", "hl7.fhir.r4b.core": "4.3.0", "hl7.fhir.r4.core": "4.0.1"}
RELEASE_NAMES = {"5.0.0": "R5", "4.3.0": "R4B", "4.0.1": "R4"}


def fhir_version_of(package_names: Iterable[str]) -> str:
    """The FHIR version of a package set ("id#version" strings): its core package's, else 5.0.0."""
    for name in package_names:
        version = CORE_PACKAGES.get(name.partition("#")[0])
        if version:
            return version
    return "5.0.0"


#: Typos in the R5 primitive regexes: the decimal regex ends its exponent with a stray "}",
#: which would reject every exponent (the HL7 validator does not apply it as written).
REGEX_FIXES = {"([eE][+-]?[0-9]{1,9}})?": "([eE][+-]?[0-9]{1,9})?"}


def _regex_of(snapshot: list[dict]) -> str | None:
    for e in snapshot:
        if e.get("path", "").endswith(".value"):
            for t in e.get("type", ()):
                for ext in t.get("extension", ()):
                    if ext.get("url") == REGEX_EXT:
                        rx = ext.get("valueString")
                        for bad, good in REGEX_FIXES.items():
                            rx = rx.replace(bad, good) if rx else rx
                        return rx
    return None


def _parent_id(eid: str) -> tuple[str, str | None]:
    """Split an element id into (parent id, slice base id or None)."""
    parent, _, last = eid.rpartition(".")
    if ":" in last:
        name, _, slice_name = last.partition(":")
        if "/" in slice_name:  # re-slice: the base is the slice it refines
            return parent, f"{parent}.{name}:{slice_name.rsplit('/', 1)[0]}" if parent else f"{name}:{slice_name.rsplit('/', 1)[0]}"
        return parent, f"{parent}.{name}" if parent else name
    return parent, None


def compile_structure_definition(sd: dict, package: str = "", fhir_version: str = "5.0.0") -> TypeDef | None:
    """Compile a StructureDefinition with a snapshot into a TypeDef tree."""
    snapshot = (sd.get("snapshot") or {}).get("element") or []
    if not snapshot:
        return None
    url = sd.get("url", "")
    elements = [compile_element(e, url) for e in snapshot]
    by_id: dict[str, ElementDef] = {}
    last_by_path: dict[str, ElementDef] = {}
    root = elements[0]
    for edef in elements:
        if edef is not root:
            parent_id, slice_base = _parent_id(edef.id)
            if slice_base is not None and edef.slice_name is not None and slice_base in by_id:
                by_id[slice_base].slices.append(edef)
            else:
                parent = by_id.get(parent_id)
                if parent is None:  # ids that do not follow the convention: fall back to paths
                    parent = last_by_path.get(edef.path.rsplit(".", 1)[0], root)
                if edef.slice_name is not None and edef.name in parent.children:
                    parent.children[edef.name].slices.append(edef)
                else:
                    parent.children.setdefault(edef.name, edef)
        by_id[edef.id] = edef
        if edef.slice_name is None:
            last_by_path.setdefault(edef.path, edef)
    for edef in elements:
        if edef.children:
            edef.json_index = build_json_index(edef.children)
    contexts = compile_contexts(sd.get("context", ()), fhir_version)
    return TypeDef(
        url=url, version=sd.get("version"), name=sd.get("name", ""), type=sd.get("type", ""),
        kind=sd.get("kind", ""), abstract=bool(sd.get("abstract", False)),
        derivation=sd.get("derivation"), base_definition=sd.get("baseDefinition"), root=root,
        regex=_regex_of(snapshot) if sd.get("kind") == "primitive-type" else None,
        contexts=contexts, context_declared=bool(sd.get("context")), status=sd.get("status"), package=package,
        by_id=by_id, fhir_versions=version_range(sd))


def _root_constraints(sd_by_url: dict[str, dict], sd: dict) -> list[dict]:
    """Constraints a root inherits from its bases and, for canonical resources, its interface."""
    out: list[dict] = []
    seen_urls = set()

    def walk(url: str | None):
        while url and url not in seen_urls:
            seen_urls.add(url)
            base = sd_by_url.get(url)
            if base is None:
                return
            elements = (base.get("snapshot") or {}).get("element") or []
            if elements:
                out.extend(elements[0].get("constraint", ()))
            url = base.get("baseDefinition")

    walk(sd.get("baseDefinition"))
    if sd.get("type") in CANONICAL_TYPES:
        for ext in sd.get("extension", ()):
            if ext.get("url") == IMPLEMENTS_EXT:
                walk(ext.get("valueUri"))
    return out


# --- the index over all loaded packages ---------------------------------------------

@dataclass
class CanonicalEntry:
    """Where a canonical resource lives (for reference resolution and profiles)."""

    url: str
    version: str | None
    resource_type: str
    id: str | None
    package: str
    filename: str


class Definitions:
    """Every StructureDefinition of the loaded packages, compiled on demand."""

    def __init__(self, blobs: dict[str, bytes], type_names: dict[str, str],
                 canonicals: dict[str, list[CanonicalEntry]], packages: list[str],
                 terminology_blob: bytes | None = None, naming_systems: dict[str, str] | None = None):
        self._blobs = blobs  # canonical url -> pickled TypeDef
        self._types: dict[str, TypeDef] = {}
        self.type_names = type_names  # "Patient" -> base definition url (specializations only)
        self.canonicals = canonicals  # url -> entries (all canonical resources in the packages)
        self.packages = packages
        self._terminology_blob = terminology_blob
        self._terminology = None
        self._extra: dict[str, TypeDef] = {}
        #: Identifier and code system URIs declared by NamingSystems (uniqueId type uri) -> name.
        self.naming_systems = naming_systems or {}
        #: The compiled-definitions cache key (packages, their files, the compiling code), set by load().
        self.cache_key: str | None = None

    # lookups
    def get(self, url: str | None) -> TypeDef | None:
        """A definition by canonical URL (a ``|version`` suffix is accepted)."""
        if not url:
            return None
        if url in self._extra:
            return self._extra[url]
        td = self._types.get(url)
        if td is not None:
            return td
        blob = self._blobs.get(url)
        if blob is None:
            if "|" in url:
                return self.get(url.split("|", 1)[0])
            return None
        td = pickle.loads(blob)
        self._types[url] = td
        return td

    def base_type(self, name: str) -> TypeDef | None:
        """The base StructureDefinition of a type ("Patient", "HumanName", "string")."""
        url = self.type_names.get(name)
        if url is None and name.startswith("http://hl7.org/fhirpath/System."):
            url = self.type_names.get(FHIRPATH_TYPES.get(name, ""))
        return self.get(url) if url else None

    def children_of(self, edef: ElementDef, td: TypeDef, type_code: str | None) -> tuple:
        """Where the children of an element are defined: the element itself, the element its
        contentReference names, or the root of its type; (None, None) when there are none.
        One answer for every reader and writer that walks a resource by its definitions."""
        if edef.children:
            return edef, td
        if edef.content_reference and "#" in edef.content_reference:
            target = td.by_id.get(edef.content_reference.split("#", 1)[1])
            if target is not None:
                return target, td
        if type_code:
            t = self.base_type(type_code)
            if t is not None and t.root.children:
                return t.root, t
        return None, None

    def is_resource_type(self, name: str) -> bool:
        td = self.base_type(name)
        return td is not None and td.kind == "resource" and not td.abstract

    @property
    def fhir_version(self) -> str:
        """The FHIR version these definitions are for (from the core package loaded)."""
        return fhir_version_of(self.packages)

    @property
    def resource_types(self) -> list[str]:
        return sorted(n for n in self.type_names if self.is_resource_type(n))

    def derive(self) -> "Definitions":
        """A copy sharing the cached definitions, to which more can be added without
        touching this one (e.g. one conformance case's supporting profiles)."""
        other = Definitions.__new__(Definitions)
        other.__dict__.update(self.__dict__)
        other._extra = dict(self._extra)
        other.type_names = dict(self.type_names)
        term = self.terminology
        other._terminology = term.derive() if term is not None else None
        return other

    def add(self, sd: dict, package: str = "") -> TypeDef | None:
        """Add a StructureDefinition from outside the packages (a project's or a CLI profile)."""
        td = compile_structure_definition(sd, package, self.fhir_version)
        if td is None and sd.get("derivation") == "constraint" and sd.get("differential"):
            from fhirpkg.fhir.snapshot import SnapshotError, compile_profile
            try:
                td = compile_profile(sd, self)
            except SnapshotError:
                td = None
        if td is not None:
            self._extra[td.url] = td
            if td.version:
                self._extra[f"{td.url}|{td.version}"] = td
            if td.derivation == "specialization" and td.kind in ("resource", "complex-type") \
                    and td.type not in self.type_names:
                self.type_names[td.type] = td.url  # a custom resource or type
        return td

    @property
    def terminology(self):
        if self._terminology is None and self._terminology_blob is not None:
            try:
                self._terminology = pickle.loads(self._terminology_blob)
            except Exception:  # a stale index from another engine version: run without, never crash
                self._terminology_blob = None
        return self._terminology

    @terminology.setter
    def terminology(self, value):
        self._terminology = value


def _cache_key(packages: list[Package]) -> str:
    h = hashlib.sha256(MODEL_VERSION.encode())
    h.update(sys.version.encode())
    # the compiled form is these modules' classes: any change to their source is a new cache
    from fhirpkg.fhir import elements, model
    from fhirpkg.validation.terminology import codes  # the terminology index is cached with the definitions
    for src in sorted({Path(m.__file__) for m in (elements, model)} | {Path(__file__)}
                      | set(Path(codes.__file__).parent.glob("*.py"))):
        h.update(hashlib.sha256(src.read_bytes()).digest())
    h.update(f"terminology-{codes.FORMAT_VERSION}".encode())
    for pkg in packages:
        st = (pkg.folder / "package.json").stat()
        h.update(f"{pkg.ref}|{st.st_size}|{int(st.st_mtime)}".encode())
    return h.hexdigest()[:24]


def load(packages: list[Package], log=None) -> Definitions:
    """Load the compiled definitions of these packages from the cache, building it if needed."""
    key = _cache_key(packages)
    path = cache_root() / f"definitions-{key}.pickle"
    if path.is_file():
        try:
            with open(path, "rb") as f:
                data = pickle.load(f)
            return _keyed(Definitions(**data), key)
        except Exception:  # a damaged or foreign cache file is rebuilt, never trusted
            pass
    start = time.perf_counter()
    data = build(packages)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".definitions-", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    if log:
        log(f"Indexed {len(data['blobs'])} definitions from {len(packages)} packages "
            f"in {time.perf_counter() - start:.1f} s (cached in {path})")
    return _keyed(Definitions(**data), key)


def _keyed(defs: Definitions, key: str) -> Definitions:
    defs.cache_key = key  # what the loaded packages were: the build cache keys its work by it
    return defs


def build(packages: list[Package]) -> dict:
    """Compile every StructureDefinition and index every canonical resource."""
    sds: dict[str, tuple[dict, str]] = {}
    canonicals: dict[str, list[CanonicalEntry]] = {}
    naming_systems: dict[str, str] = {}
    for pkg in packages:
        for entry in pkg.index:
            url = entry.get("url")
            rt = entry.get("resourceType")
            if url:
                canonicals.setdefault(url, []).append(CanonicalEntry(
                    url, entry.get("version"), rt, entry.get("id"), str(pkg.ref), entry["filename"]))
            if rt == "NamingSystem":
                ns = orjson.loads((pkg.folder / entry["filename"]).read_bytes())
                for uid in ns.get("uniqueId") or ():
                    if isinstance(uid, dict) and uid.get("type") == "uri" and isinstance(uid.get("value"), str):
                        naming_systems.setdefault(uid["value"], ns.get("name") or ns.get("id") or "")
            if rt == "StructureDefinition" and url and url not in sds:
                sd = orjson.loads((pkg.folder / entry["filename"]).read_bytes())
                sds[url] = (sd, str(pkg.ref))
    sd_by_url = {u: sd for u, (sd, _) in sds.items()}
    blobs: dict[str, bytes] = {}
    type_names: dict[str, str] = {}
    fhir_version = fhir_version_of(str(p.ref) for p in packages)
    for url, (sd, pkg) in sds.items():
        td = compile_structure_definition(sd, pkg, fhir_version)
        if td is None:
            continue
        if td.kind in ("resource", "complex-type", "primitive-type") or td.root.path == td.type:
            inherited = [compile_constraint(c) for c in _root_constraints(sd_by_url, sd)]
            have = {c.key for c in td.root.constraints}
            extra = [c for c in inherited if c.key not in have and not have.add(c.key)]
            if extra:
                td.root.constraints = td.root.constraints + tuple(extra)
        blob = pickle.dumps(td, protocol=pickle.HIGHEST_PROTOCOL)
        blobs[url] = blob
        if td.version:
            blobs[f"{url}|{td.version}"] = blob
        if td.derivation == "specialization" or (td.derivation is None and td.kind != "logical"):
            if td.url.startswith("http://hl7.org/fhir/StructureDefinition/"):
                type_names.setdefault(td.type, url)
    from fhirpkg.validation.terminology.codes import Terminology
    terminology_blob = pickle.dumps(Terminology.from_packages(packages), protocol=pickle.HIGHEST_PROTOCOL)
    return {"blobs": blobs, "type_names": type_names, "canonicals": canonicals,
            "packages": [str(p.ref) for p in packages], "terminology_blob": terminology_blob,
            "naming_systems": naming_systems}


def choice_suffix(type_code: str) -> str:
    return type_code[0].upper() + type_code[1:]


_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
