"""Package rules: what a content package needs beyond each resource being valid FHIR.

One resource per file under ``<ResourceType>/<id>.json``; ids that servers
accept (letters and digits, at least one letter, at most 64 characters); every
canonical URL ``<canonical>/<ResourceType>/<id>`` at the package version; no
duplicate ids or canonicals; an identifier on non-canonical artifacts (HAPI's
package installer refuses MedicationKnowledge without one, HAPI-1292); no
artifact that, through the package's own canonicals, ends up including itself.
Logic (docs/logic.md): a PlanDefinition whose conditions name CQL identifiers has a ``library`` that
resolves within the package, each identifier is defined in that library's ELM, and each Library's
``text/cql`` is the project's ``cql/<name>.cql`` file (a stale Library is found without Java).
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Iterator

from fhirpkg.fhir.definitions import CANONICAL_TYPES
from fhirpkg.issues import Issue, Severity
from fhirpkg.logic import translate
from fhirpkg.content.project import Project, ProjectResource

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
NEEDS_IDENTIFIER = frozenset({"MedicationKnowledge", "ClinicalUseDefinition"})
# relatedArtifact types that mean "this artifact includes or needs that one" (CRMI dependency tracing)
INCLUDING_ARTIFACT_TYPES = frozenset({"composed-of", "depends-on"})


def _issue(r: ProjectResource, severity: Severity, code: str, message: str, rule: str, loc: tuple = ()) -> Issue:
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
            yield _issue(r, Severity.ERROR, "required", "A package resource needs an id (servers "
                         "load it with PUT <Type>/<id>)", "package-id")
            continue
        ids[f"{rt}/{rid}"].append(r)
        if not ID_RE.match(rid) or rid.isdigit():
            yield _issue(r, Severity.ERROR, "invalid",
                         f"The id '{rid}' must be 1-64 letters, digits, '-' or '.', with at least one letter "
                         "(HAPI FHIR refuses all-numeric client-assigned ids)",
                         "package-id", ("id",))
        expected = f"{rt}/{rid}.json"
        rel = "/".join(r.path.parts[-2:])
        if rel != expected:
            yield _issue(r, Severity.ERROR, "structure",
                         f"The file should be {project.root / expected} (one folder per resource type, "
                         f"the file named after the id)",
                         "package-layout", ())
        if rt in CANONICAL_TYPES and manifest is not None:
            url = r.url
            want = f"{manifest.canonical}/{rt}/{rid}"
            if url != want:
                yield _issue(r, Severity.ERROR, "invalid",
                             f"The canonical URL must be {want} (the package canonical, the type and the id); "
                             f"found {url!r}",
                             "package-canonical", ("url",) if url else ())
            want_version = _cql_version(r) or manifest.version
            if r.version != want_version:
                yield _issue(r, Severity.ERROR, "invalid",
                             f"The version must be the package version {manifest.version}; found {r.version!r}"
                             if want_version == manifest.version else
                             f"The version must be the version of its CQL library, {want_version}; found {r.version!r}",
                             "package-version",
                             ("version",) if r.version else ())
            if isinstance(url, str):
                urls[f"{url}|{r.version}"].append(r)
        if rt in NEEDS_IDENTIFIER and not r.json.get("identifier"):
            yield _issue(r, Severity.ERROR, "required",
                         f"A {rt} in a package needs an identifier: it is not a canonical resource, so servers "
                         "match it by identifier (HAPI's package installer refuses it without one, HAPI-1292)",
                         "package-identifier")
    for key, rs in ids.items():
        for r in rs[1:]:
            yield _issue(r, Severity.ERROR, "duplicate", f"{key} is defined more than once (also in {rs[0].path})",
                         "package-duplicate", ("id",))
    for key, rs in urls.items():
        for r in rs[1:]:
            yield _issue(r, Severity.ERROR, "duplicate",
                         f"The canonical {key} is defined more than once (also in {rs[0].path})",
                         "package-duplicate", ("url",))

    yield from _cycles(project)
    yield from _logic(project)


def _cql_version(r: ProjectResource) -> str | None:
    """The version a Library with CQL content declares (``library X version 'v'``): CQL includes
    resolve by that version, so it, not the package version, is the Library's version (FHIRHelpers 4.0.1)."""
    if r.type != "Library":
        return None
    cql = translate.attachment(r.json, translate.CQL_TYPE)
    m = re.search(rb"^\s*library\s+\S+\s+version\s+'([^']+)'", cql or b"", re.M)
    return m.group(1).decode("utf-8", "replace") if m else None


def _conditions(actions, loc) -> Iterator[tuple[str, tuple]]:
    """(expression, location) of every condition naming a CQL definition (``translate.is_cql_identifier``),
    at any depth."""
    for i, action in enumerate(actions if isinstance(actions, list) else []):
        if not isinstance(action, dict):
            continue
        for j, cond in enumerate(action.get("condition") or []):
            expr = cond.get("expression") if isinstance(cond, dict) else None
            if isinstance(expr, dict) and translate.is_cql_identifier(expr.get("language")) \
                    and isinstance(expr.get("expression"), str):
                yield expr["expression"], loc + (i, "condition", j, "expression", "expression")
        yield from _conditions(action.get("action"), loc + (i, "action"))


def _logic(project: Project) -> Iterator[Issue]:
    """Conditions resolve into the ELM of their PlanDefinition's libraries; Libraries carry their CQL file."""
    libraries: dict[str, ProjectResource] = {}
    for r in project.resources:
        if r.type == "Library" and isinstance(r.url, str):
            libraries[r.url] = libraries.get(r.url, r)
            libraries[f"{r.url}|{r.version}"] = r
    for r in project.resources:
        if r.type != "PlanDefinition":
            continue
        conditions = list(_conditions(r.json.get("action"), ("action",)))
        if not conditions:
            continue
        refs = r.json.get("library") if isinstance(r.json.get("library"), list) else []
        if not refs:
            yield _issue(r, Severity.ERROR, "required",
                         f"Conditions name CQL identifiers ({conditions[0][0]!r}, ...) but the PlanDefinition has no "
                         "library: an engine running $apply finds nothing to evaluate",
                         "logic-library-missing", conditions[0][1])
            continue
        defined: set[str] = set()
        for k, ref in enumerate(refs):
            lib = libraries.get(ref) if isinstance(ref, str) else None
            names = translate.elm_definitions(lib.json) if lib is not None else None
            if names is None:
                yield _issue(r, Severity.ERROR, "not-found",
                             f"The library {ref!r} is not a Library with ELM ({translate.ELM_TYPE}) in this package",
                             "logic-library-unresolved", ("library", k))
                continue
            defined |= names
        if len(defined) == 0:
            continue
        for name, loc in conditions:
            if name not in defined:
                yield _issue(r, Severity.ERROR, "not-found",
                             f"The condition names {name!r}, which the ELM of {', '.join(map(str, refs))} does not "
                             "define",
                             "logic-identifier-unknown", loc)
    for src, lib_path, why in translate.stale_sources(project.root):
        lib = next((x for x in project.resources if x.path.resolve() == lib_path.resolve()), None)
        message = f"{lib_path} is stale for {src}: {why} (run: fhirpkg cql)"
        if lib is None:
            yield Issue(Severity.ERROR, "business-rule", message, "logic-cql-stale", file=str(src), line=1, column=1)
        else:
            yield _issue(lib, Severity.ERROR, "business-rule", message, "logic-cql-stale", ("content",))


def _inclusions(r: ProjectResource) -> Iterator[tuple[str, tuple]]:
    """(canonical without version, location) of every artifact ``r`` includes:
    PlanDefinition action definitions (at any depth) and composed-of / depends-on
    related artifacts."""
    def actions(items, loc):
        for i, action in enumerate(items if isinstance(items, list) else []):
            if not isinstance(action, dict):
                continue
            target = action.get("definitionCanonical")
            if isinstance(target, str):
                yield target, loc + (i, "definitionCanonical")
            yield from actions(action.get("action"), loc + (i, "action"))

    if r.type == "PlanDefinition":
        yield from ((c.split("|")[0], loc) for c, loc in actions(r.json.get("action"), ("action",)))
    related = r.json.get("relatedArtifact")
    for i, ra in enumerate(related if isinstance(related, list) else []):
        if isinstance(ra, dict) and ra.get("type") in INCLUDING_ARTIFACT_TYPES and isinstance(ra.get("resource"), str):
            yield ra["resource"].split("|")[0], ("relatedArtifact", i, "resource")


def _cycles(project: Project) -> Iterator[Issue]:
    """A warning for each inclusion that closes a cycle among the package's own
    canonicals: a server or engine that expands such an artifact never ends."""
    by_url = {r.url: r for r in project.resources if isinstance(r.url, str)}
    edges = {url: [(t, loc) for t, loc in _inclusions(r) if t in by_url] for url, r in by_url.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in by_url:
        if state.get(start):
            continue
        path, stack = [start], [iter(edges[start])]
        state[start] = 1
        while stack:
            step = next(stack[-1], None)
            if step is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            target, loc = step
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                names = " -> ".join(f"{by_url[u].type}/{by_url[u].id}" for u in cycle)
                yield _issue(by_url[path[-1]], Severity.WARNING, "business-rule",
                             f"{names}: this artifact includes itself through the package's own canonicals",
                             "package-cycle", loc)
            elif not state.get(target):
                state[target] = 1
                path.append(target)
                stack.append(iter(edges[target]))
