"""The home page (what the package is, its status, downloads, the pathway) and the artifact index."""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass

from fhirpkg.publish.site import pathway as pw
from fhirpkg.publish.site.html import anchor_id, code, esc, link, markdown
from fhirpkg.publish.site.index import SiteIndex, review_tags, status_of
from fhirpkg.publish.site.pages import Page, dl, pathway_figure, section

DOWNLOAD_KINDS = ((r"\.transaction(\.r4b?)?\.json$", "Transaction Bundle: PUT every resource; load it into a FHIR server"),
                  (r"\.collection(\.r4b?)?\.json$", "Collection Bundle: the same resources, for archiving"),
                  (r"(^|/)package\.tgz$", "FHIR NPM package (package.json, .index.json, ImplementationGuide, one file per resource)"),
                  (r"(^|/)losses\.json$", "What the export could not carry over"))


@dataclass(frozen=True)
class Package:
    """The manifest fields the site shows."""

    name: str
    version: str
    canonical: str
    title: str
    description: str
    date: str
    data: dict

    @property
    def id(self) -> str:
        return f"{self.name}#{self.version}"


NO_STATUS = ""


@dataclass(frozen=True)
class ContentStatus:
    """How many resources say draft (or else), and how many carry each review tag."""

    total: int
    statuses: tuple[tuple[str, int, tuple[str, ...]], ...]  # (status, count, resource types)
    tags: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, resources: list[dict]) -> "ContentStatus":
        groups: dict[str, list[str]] = {}
        for r in resources:
            groups.setdefault(status_of(r) or NO_STATUS, []).append(str(r.get("resourceType")))
        tags = Counter(t for r in resources for t in dict.fromkeys(review_tags(r)))
        statuses = tuple(sorted(((s, len(ts), tuple(sorted(set(ts)))) for s, ts in groups.items()),
                                key=lambda g: (-g[1], g[0])))
        return cls(len(resources), statuses, tuple(sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))))

    @property
    def all_draft(self) -> bool:
        """Every resource that states a status says draft."""
        return [s for s, _, _ in self.statuses if s != NO_STATUS] == ["draft"]

    def _of(self, n: int) -> str:
        return f"all {n}" if n == self.total else f"{n} of {self.total}"

    def sentence(self) -> str:
        parts = []
        for s, n, types in self.statuses:
            if s == NO_STATUS:
                parts.append(f"{self._of(n)} resources ({', '.join(types)}) state no status")
            else:
                parts.append(f"{self._of(n)} resources have status {s}")
        parts += [f"{self._of(n)} are tagged “{t}”" for t, n in self.tags]
        return "; ".join(parts)

    def banner(self) -> str:
        """Short header text for every page."""
        if self.all_draft:
            head = "Draft content — not for clinical use."
        else:
            head = "Content status: " + ", ".join(f"{s or 'none'} ({n})" for s, n, _ in self.statuses) + "."
        tags = " ".join(f"{esc(t)} ({n} of {self.total} resources)." for t, n in self.tags)
        return f"<p><strong>{esc(head)}</strong> {tags}</p>"


def _download_kind(path: str) -> str:
    """What a build output is, from its name; '' for files that are not downloads."""
    for pattern, what in DOWNLOAD_KINDS:
        if re.search(pattern, path):
            version = "R4B export" if path.startswith("r4b/") else "R4 export" if path.startswith("r4/") else "R5"
            return f"{what} ({version})"
    return ""


def _size(n: int) -> str:
    return f"{n / 1024:.0f} KiB" if n >= 10240 else f"{n:,} bytes"


def downloads(files: dict[str, bytes]) -> str:
    rows = []
    def order(p: str):
        kind = next((n for n, (pattern, _) in enumerate(DOWNLOAD_KINDS) if re.search(pattern, p)), 9)
        return (p.count("/"), p.split("/")[0] if "/" in p else "", kind, p)

    for path in sorted(files, key=order):
        kind = _download_kind(path)
        if not kind or path.startswith("site/"):
            continue
        digest = hashlib.sha256(files[path]).hexdigest()
        rows.append(f'<tr><th scope="row">{link("../" + path, path)}</th><td>{esc(kind)}</td>'
                    f'<td class="num">{_size(len(files[path]))}</td><td><code title="SHA-256 {digest}">{digest[:16]}…</code></td></tr>')
    rows.append(f'<tr><th scope="row">{link("../SHA256SUMS", "SHA256SUMS")}</th>'
                f"<td>SHA-256 checksums of every file of the build (check with <code>sha256sum -c SHA256SUMS</code>)</td>"
                f'<td class="num">—</td><td>—</td></tr>')
    rows.append(f'<tr><th scope="row">{link("../build-report.json", "build-report.json")}</th>'
                f"<td>Build report: resource counts, validation summary, exports</td><td class=\"num\">—</td><td>—</td></tr>")
    return ('<table class="downloads"><caption>Files of this build (links are relative to the site folder)</caption>'
            '<thead><tr><th scope="col">File</th><th scope="col">What</th><th scope="col">Size</th>'
            f'<th scope="col">SHA-256</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def home(package: Package, status: ContentStatus, index: SiteIndex, pathways: list[pw.Pathway],
         files: dict[str, bytes], validation: str, tool: str) -> Page:
    m = package.data
    deps = ", ".join(f"{code(k)} {esc(v)}" for k, v in sorted((m.get("dependencies") or {}).items()))
    rows = [("Package", code(package.id)), ("Version", esc(package.version)),
            ("Canonical base", code(package.canonical)), ("FHIR version", esc(", ".join(m.get("fhirVersions") or ()))),
            ("Release date", esc(package.date)), ("Author", esc(m.get("author", ""))),
            ("License", esc(m.get("license", ""))), ("Dependencies", deps), ("Built with", esc(tool))]
    counts = Counter(e.type for e in index.entries)
    contents = "".join(f"<li>{link('artifacts.html#' + anchor_id('type', t), t)}: {n}</li>"
                       for t, n in sorted(counts.items()))
    state = (f'<section class="status-box" aria-labelledby="status"><h2 id="status">Status</h2>'
             f"<p>Version {esc(package.version)}, released {esc(package.date[:10] or 'undated')}. "
             f"{esc(status.sentence())}.</p>{validation}</section>")
    if pathways:
        figures = "".join(pathway_figure(p, f"pathway-{p.entry.id}") for p in pathways)
        goals = ""
        for p in pathways:
            items = "".join(f"<li>{esc((g.get('description') or {}).get('text', ''))}</li>"
                            for g in p.entry.resource.get("goal") or () if isinstance(g, dict))
            goals += f"<p>Goals of {link(p.entry.page, p.entry.title)}:</p><ul>{items}</ul>" if items else ""
        pathway_html = goals + figures
    else:
        pathway_html = "<p>This package has no clinical-protocol PlanDefinition, so there is no pathway to draw.</p>"
    main = (f"<h1>{esc(package.title)}</h1>{state}"
            + section("Treatment pathway", pathway_html, sid="pathway")
            + section("About this package", markdown(package.description) + dl(rows), sid="about")
            + section("Downloads", downloads(files), sid="downloads")
            + section("Contents", f"<ul class=\"columns\">{contents}</ul><p>{link('artifacts.html', 'All artifacts')}"
                      f" · {link('citations.html', 'Citations')} · {link('coverage.html', 'Source-claim coverage')}"
                      f" · {link('qa.html', 'Validation results (QA)')}</p>", sid="contents"))
    return Page("index.html", "Home", main)


def artifacts(index: SiteIndex) -> Page:
    by_type: dict[str, list] = {}
    for e in index.entries:
        by_type.setdefault(e.type, []).append(e)
    parts = ["<h1>Artifacts</h1>", f"<p>{len(index.entries)} resources in this package, by type.</p>"]
    toc = "".join(f"<li>{link('#' + anchor_id('type', t), t)} ({len(v)})</li>" for t, v in sorted(by_type.items()))
    parts.append(f'<nav aria-label="Resource types"><ul class="columns">{toc}</ul></nav>')
    for rtype, entries in sorted(by_type.items()):
        rows = "".join(f'<tr><th scope="row">{link(e.page, e.title)}</th><td><code>{esc(e.id)}</code></td>'
                       f"<td>{esc(status_of(e.resource))}</td><td><code>{esc(e.url)}</code></td></tr>" for e in entries)
        parts.append(section(rtype, f'<table class="index"><caption>{esc(rtype)} ({len(entries)})</caption><thead><tr>'
                                    '<th scope="col">Title</th><th scope="col">Id</th><th scope="col">Status</th>'
                                    f'<th scope="col">Canonical URL</th></tr></thead><tbody>{rows}</tbody></table>',
                             sid=anchor_id("type", rtype)))
    return Page("artifacts.html", "Artifacts", "".join(parts))
