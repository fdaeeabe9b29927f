"""Canonical resources as written, for the per-type checkers that compare with another resource
(a derivedFrom SearchParameter, the code system a property uri names, a dependency's guide).

The compiled definitions keep StructureDefinitions and terminology in reduced form; these
checkers need other fields, so the resource is read from its package file (once: cached) or
taken from the resources given to the run (the resolver's).
"""
from __future__ import annotations

from functools import lru_cache

import orjson


@lru_cache(maxsize=256)
def _read(package: str, filename: str) -> dict | None:
    from fhirpkg.fhir import packages as pk
    try:
        found = pk.installed(pk.PackageRef.parse(package))
        return orjson.loads((found.folder / filename).read_bytes()) if found is not None else None
    except (ValueError, OSError, orjson.JSONDecodeError):
        return None


def find(defs, resolver, url: str | None, resource_type: str) -> dict | None:
    """The ``resource_type`` resource with canonical ``url`` (``url|version`` accepted), or None."""
    if not isinstance(url, str) or not url:
        return None
    for key in (url, url.split("|", 1)[0]):
        res = resolver.by_canonical.get(key) if resolver is not None else None
        if isinstance(res, dict) and res.get("resourceType") == resource_type:
            return res
    base, _, version = url.partition("|")
    for entry in getattr(defs, "canonicals", {}).get(base, ()):
        if entry.resource_type == resource_type and (not version or entry.version == version):
            res = _read(entry.package, entry.filename)
            if res is not None:
                return res
    return None
