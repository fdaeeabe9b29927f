"""Package rules: what a content package needs beyond each resource being valid FHIR.

One resource per file under ``<ResourceType>/<id>.json``; ids that servers
accept (letters and digits, at least one letter, at most 64 characters); every
canonical URL ``<canonical>/<ResourceType>/<id>`` at the package version; no
duplicate ids or canonicals; an identifier on non-canonical artifacts (HAPI's
package installer refuses MedicationKnowledge without one, HAPI-1292).
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Iterator

from ..definitions import CANONICAL_TYPES
from ..issues import Issue, Severity
from ..project import Project, ProjectResource

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
NEEDS_IDENTIFIER = frozenset({"MedicationKnowledge", "ClinicalUseDefinition"})


def _issue(r: ProjectResource, severity: Severity, code: str, rule: str, message: str, loc: tuple = ()) -> Issue:
    line, col = r.doc.locate(loc)
    expr = r.type + ("." + ".".join(str(p) for p in loc if isinstance(p, str)) if loc else "")
    return Issue(severity, code, message, rule, expr, r.doc.file, line, col, loc)


def check(project: Project) -> Iterator[Issue]:
    """Yield package-level issues for a loaded project."""
    manifest = project.manifest
    ids: dict[str, list[ProjectResource]] = defaultdict(list)
    urls: dict[str, list[ProjectResource]] = defaultdict(list)
    for r in project.resources:
        rt, rid = r.type, r.id
        if not isinstance(rid, str):
            yield _issue(r, Severity.ERROR, "required", "package-id", "A package resource needs an id (servers "
                         "load it with PUT <Type>/<id>)")
            continue
        ids[f"{rt}/{rid}"].append(r)
        if not ID_RE.match(rid) or rid.isdigit():
            yield _issue(r, Severity.ERROR, "invalid", "package-id",
                         f"The id '{rid}' must be 1-64 letters, digits, '-' or '.', with at least one letter "
                         "(HAPI FHIR refuses all-numeric client-assigned ids)", ("id",))
        expected = f"{rt}/{rid}.json"
        rel = "/".join(r.path.parts[-2:])
        if rel != expected:
            yield _issue(r, Severity.ERROR, "structure", "package-layout",
                         f"The file should be {project.root / expected} (one folder per resource type, "
                         f"the file named after the id)", ())
        if rt in CANONICAL_TYPES and manifest is not None:
            url = r.url
            want = f"{manifest.canonical}/{rt}/{rid}"
            if url != want:
                yield _issue(r, Severity.ERROR, "invalid", "package-canonical",
                             f"The canonical URL must be {want} (the package canonical, the type and the id); "
                             f"found {url!r}", ("url",) if url else ())
            if r.version != manifest.version:
                yield _issue(r, Severity.ERROR, "invalid", "package-version",
                             f"The version must be the package version {manifest.version}; found {r.version!r}",
                             ("version",) if r.version else ())
            if isinstance(url, str):
                urls[f"{url}|{r.version}"].append(r)
        if rt in NEEDS_IDENTIFIER and not r.json.get("identifier"):
            yield _issue(r, Severity.ERROR, "required", "package-identifier",
                         f"A {rt} in a package needs an identifier: it is not a canonical resource, so servers "
                         "match it by identifier (HAPI's package installer refuses it without one, HAPI-1292)")
    for key, rs in ids.items():
        for r in rs[1:]:
            yield _issue(r, Severity.ERROR, "duplicate", "package-duplicate",
                         f"{key} is defined more than once (also in {rs[0].path})", ("id",))
    for key, rs in urls.items():
        for r in rs[1:]:
            yield _issue(r, Severity.ERROR, "duplicate", "package-duplicate",
                         f"The canonical {key} is defined more than once (also in {rs[0].path})", ("url",))
