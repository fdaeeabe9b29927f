"""``build/site/``: the package as web pages, for the clinicians and informaticists who review it.

Reviewers read pages, not JSON.  ``generate`` turns the build's own resources
into a static, self-contained site (HTML and one stylesheet; no scripts, fonts
or anything loaded from elsewhere, so it works from ``file://``): a home page
with the treatment pathway drawn from the clinical-protocol PlanDefinition, a
page per resource, the citations, the source-claim coverage and the validation
results.  Every word of content comes from the resources (or the claim map and
validator output beside ``definitions/``); nothing is written twice by hand.

The output is a pure function of the inputs: no clock, no randomness, stable
order, so ``fhirpkg build --check`` can compare it byte for byte.
"""
from __future__ import annotations

from pathlib import Path

from fhirpkg import __version__
from fhirpkg.publish.site import coverage, home, pages, pathway, qa
from fhirpkg.publish.site.index import SiteIndex
from fhirpkg.publish.site.html import esc, link
from fhirpkg.publish.site.layout import Shell, asset, render

__all__ = ["generate"]


def _root_parent(project) -> Path | None:
    root = getattr(project, "root", None)
    return Path(root).resolve().parent if root is not None else None


def _resource_pages(project, index: SiteIndex) -> dict[str, str]:
    """Issue file (as the build reports it) -> page of the resource in that file."""
    out: dict[str, str] = {}
    parent = _root_parent(project)
    names: dict[str, list[str]] = {}
    for r in getattr(project, "resources", ()) or ():
        entry = index.by_key.get(f"{r.json.get('resourceType')}/{r.json.get('id')}")
        if entry is None:
            continue
        path = Path(r.path)
        try:
            rel = str(path.resolve().relative_to(parent)) if parent else str(path)
        except ValueError:
            rel = str(path)
        out[rel] = entry.page
        names.setdefault(path.name, []).append(entry.page)
    for e in index.entries:
        out[f"(generated) {e.key}"] = e.page
    for name, found in names.items():  # the HL7 validator reports bare file names
        if len(found) == 1:
            out.setdefault(name, found[0])
    return out


def generate(*, project, resources: list[dict], ig: dict | None = None, files: dict[str, bytes] | None = None,
             issues=(), defs=None, json_texts: dict | None = None,
             narrative_verdicts=None, jobs: int = 1) -> dict[str, bytes]:
    """Site path -> bytes for every page and asset of ``build/site/``.  The build may share its
    caches: ``json_texts`` (resource JSON texts, see ``serialize.dumps``) and ``narrative_verdicts``
    (a ``safe.Verdicts``), filled in as pages are made.  ``jobs``: processes rendering the resource
    pages of a large package (the same bytes with any number)."""
    manifest = project.manifest
    package = home.Package(manifest.name, manifest.version, manifest.canonical, manifest.title or manifest.name,
                           manifest.description, manifest.date, dict(manifest.data))
    everything = list(resources) + ([ig] if ig else [])
    index = SiteIndex.build(everything, package.canonical)
    index.json_texts, index.narrative_verdicts = json_texts, narrative_verdicts
    index.trails = pathway.trails(index)
    status = home.ContentStatus.of(list(resources))
    tool = f"fhirpkg {__version__}"
    shell = Shell(
        site_title=package.title, package=package.id, version=package.version, banner=status.banner(),
        footer=(f"<p>{esc(package.id)} · released {esc(package.date or 'undated')} · generated from the "
                f"package's resources by {esc(tool)} · {link('../SHA256SUMS', 'checksums')}</p>"))
    protocols = [pathway.read(e, index) for e in index.of_type("PlanDefinition") if pathway.is_protocol(e)]
    parent = _root_parent(project)
    claims = coverage.load(parent / coverage.CLAIMS_FILE, coverage.CLAIMS_FILE.as_posix()) if parent else None
    hl7 = qa.read_hl7_outcome(parent / qa.HL7_OUTCOME, qa.HL7_OUTCOME.as_posix()) if parent else None
    issue_list = list(issues)
    findings = [qa.from_issue(i) for i in issue_list]
    validation = qa.verdict(findings, link("qa.html", "See the validation results."))

    all_pages = [home.home(package, status, index, protocols, dict(files or {}), validation, tool),
                 home.artifacts(index), pages.citations_page(index), coverage.coverage_page(claims, index),
                 qa.qa_page(issue_list, _resource_pages(project, index), hl7, tool)]
    out = {p.path: render(shell, p.path, p.title, p.main) for p in all_pages}
    out.update(_render_resource_pages([e for e in index.entries if "#" not in e.page], index, shell, jobs))
    out["style.css"] = asset("style.css")
    return dict(sorted(out.items()))


#: Resource pages from which rendering is spread over the build's processes, and pages per task:
#: below it, forking costs more than it saves.
PARALLEL_PAGES = 400
PAGES_PER_TASK = 50


def _render_resource_pages(entries: list, index: SiteIndex, shell: Shell, jobs: int) -> dict[str, bytes]:
    """Page path -> bytes for each entry.  Worker processes are forked with the index (nothing is
    re-read); the narrative verdicts they reach come back to the parent's ``index.narrative_verdicts``."""
    from fhirpkg import parallel

    verdicts = index.narrative_verdicts

    def work(chunk: list) -> tuple[dict[str, bytes], dict]:
        known = set(verdicts.reached) if verdicts is not None else set()
        rendered = {}
        for e in chunk:
            page = pages.resource_page(e, index)
            rendered[page.path] = render(shell, page.path, page.title, page.main)
        reached = {k: v for k, v in verdicts.reached.items() if k not in known} if verdicts is not None else {}
        return rendered, reached

    chunks = [entries[i:i + PAGES_PER_TASK] for i in range(0, len(entries), PAGES_PER_TASK)]
    out: dict[str, bytes] = {}
    for _, (rendered, reached) in parallel.ordered_map(work, chunks, jobs if len(entries) >= PARALLEL_PAGES else 1):
        out.update(rendered)
        if verdicts is not None:
            verdicts.reached.update(reached)
    return out
