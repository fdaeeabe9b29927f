"""The QA page: this build's validation results and, when given, the HL7 validator's.

The HL7 validator is not run by the build (it needs Java and minutes); its
OperationOutcome (or a Bundle of them, as ``tests/interop`` writes) is read from
``qa/hl7-validator-outcome.json`` beside ``definitions/`` when present, so a
reviewer sees both verdicts side by side.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fhirpkg.issues import Issue
from fhirpkg.publish.site.html import code, esc, link
from fhirpkg.publish.site.pages import Page, section

HL7_OUTCOME = Path("qa") / "hl7-validator-outcome.json"
EXT_FILE = "http://hl7.org/fhir/StructureDefinition/operationoutcome-file"
EXT_LINE = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line"
EXT_COL = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-col"
SEVERITIES = ("fatal", "error", "warning", "information")


@dataclass(frozen=True)
class Finding:
    """One issue from either validator, in the shape the page shows."""

    severity: str
    file: str
    line: int | None
    column: int | None
    expression: str
    rule: str
    message: str

    def sort_key(self):
        return (SEVERITIES.index(self.severity) if self.severity in SEVERITIES else 9, self.file,
                self.line or 0, self.column or 0, self.rule, self.message)


def from_issue(i: Issue) -> Finding:
    return Finding(i.severity.code, i.file or "", i.line, i.column, i.expression or "", i.rule or "", i.message)


@dataclass(frozen=True)
class Hl7Outcome:
    source: str
    findings: tuple[Finding, ...]
    problem: str = ""  # why the file could not be read


def _ext(element: dict, url: str):
    for e in element.get("extension") or ():
        if isinstance(e, dict) and e.get("url") == url:
            return next((v for k, v in e.items() if k.startswith("value")), None)
    return None


def read_hl7_outcome(path: Path, shown_as: str) -> Hl7Outcome | None:
    """The HL7 validator's OperationOutcome(s), or None when the file is absent."""
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return Hl7Outcome(shown_as, (), f"it is not readable JSON ({exc.__class__.__name__})")
    if not isinstance(doc, dict):
        return Hl7Outcome(shown_as, (), "it is not a JSON object")
    if doc.get("resourceType") == "OperationOutcome":
        outcomes = [doc]
    elif doc.get("resourceType") == "Bundle":
        outcomes = [e.get("resource") for e in doc.get("entry") or () if isinstance(e, dict)]
    else:
        return Hl7Outcome(shown_as, (), f"its resourceType is {doc.get('resourceType')!r}, "
                                        "not OperationOutcome or Bundle")
    findings = []
    for oo in outcomes:
        if not isinstance(oo, dict):
            continue
        file = str(_ext(oo, EXT_FILE) or "")
        for i in oo.get("issue") or ():
            if not isinstance(i, dict):
                continue
            text = (i.get("details") or {}).get("text") or i.get("diagnostics") or ""
            if i.get("severity") == "information" and text == "All OK" and not i.get("expression"):
                continue
            line, col = _ext(i, EXT_LINE), _ext(i, EXT_COL)
            findings.append(Finding(str(i.get("severity", "")), Path(file).name if file else "",
                                    int(line) if isinstance(line, int) else None,
                                    int(col) if isinstance(col, int) else None,
                                    ", ".join(map(str, i.get("expression") or ())), str(i.get("code", "")), str(text)))
    return Hl7Outcome(shown_as, tuple(sorted(findings, key=Finding.sort_key)))


def counts(findings) -> dict[str, int]:
    c = Counter(f.severity for f in findings)
    return {s: c.get(s, 0) for s in SEVERITIES}


def counts_table(findings, caption: str) -> str:
    c = counts(findings)
    head = "".join(f'<th scope="col">{s}</th>' for s in SEVERITIES)
    cells = "".join(f'<td class="num sev-{s}">{c[s]}</td>' for s in SEVERITIES)
    return (f'<table class="counts"><caption>{esc(caption)}</caption><thead><tr>{head}<th scope="col">total</th>'
            f'</tr></thead><tbody><tr>{cells}<td class="num">{len(findings)}</td></tr></tbody></table>')


def verdict(findings, more: str = "") -> str:
    """One line: valid or not, with the counts (``more`` is HTML appended, e.g. a link)."""
    c = counts(findings)
    bad = c["fatal"] + c["error"]
    more = f" {more}" if more else ""
    if bad:
        return (f'<p class="verdict invalid"><strong>Not valid:</strong> {bad} error(s), {c["warning"]} warning(s). '
                "The outputs were built anyway (<code>--force</code>); do not import them until the errors are "
                f"fixed.{more}</p>")
    info = f", {c['information']} information message(s)" if c["information"] else ""
    return (f'<p class="verdict valid"><strong>Valid:</strong> no errors ({c["warning"]} warning(s){info}).'
            f"{more}</p>")


def _location(f: Finding, pages: dict[str, str]) -> str:
    where = f.file + (f":{f.line}" if f.line else "") + (f":{f.column}" if f.column and f.line else "")
    page = pages.get(f.file)
    return link(page, where) if page else esc(where)


def findings_table(findings, pages: dict[str, str], caption: str, tid: str) -> str:
    rows = "".join(
        f'<tr><td class="sev-{esc(f.severity)}">{esc(f.severity)}</td><td>{_location(f, pages)}</td>'
        f"<td>{code(f.expression) if f.expression else ''}</td><td>{code(f.rule) if f.rule else ''}</td>"
        f"<td>{esc(f.message)}</td></tr>" for f in findings)
    return (f'<table class="issues" id="{esc(tid)}"><caption>{esc(caption)}</caption><thead><tr>'
            '<th scope="col">Severity</th><th scope="col">Location</th><th scope="col">Expression</th>'
            f'<th scope="col">Rule</th><th scope="col">Message</th></tr></thead><tbody>{rows}</tbody></table>')


def _by_severity(findings, pages, prefix: str) -> str:
    out = []
    for sev in SEVERITIES:
        group = [f for f in findings if f.severity == sev]
        if not group:
            continue
        table = findings_table(group, pages, f"{sev}: {len(group)}", f"{prefix}-{sev}")
        opened = " open" if sev in ("fatal", "error", "warning") and len(group) <= 200 else ""
        out.append(f"<details{opened}><summary>{esc(sev.capitalize())} ({len(group)})</summary>{table}</details>")
    return "".join(out)


def qa_page(issues: list[Issue], pages: dict[str, str], hl7: Hl7Outcome | None, tool: str) -> Page:
    findings = sorted((from_issue(i) for i in issues), key=Finding.sort_key)
    ours = (f"<p>Validation of <code>definitions/</code> and of the generated parts (narratives, ImplementationGuide) "
            f"by {esc(tool)}, in this build. Locations link to the resource's page. Errors and warnings are "
            "recorded; information-level notes are not (<code>fhirpkg validate definitions</code> shows them).</p>"
            + verdict(findings) + counts_table(findings, "Issues by severity")
            + _by_severity(findings, pages, "ours"))
    if hl7 is None:
        theirs = (f"<p class=\"notice\">Not available for this build: no <code>{esc(HL7_OUTCOME.as_posix())}</code> "
                  "was found beside <code>definitions/</code>. Run the HL7 validator (see <code>tests/interop</code>) and "
                  "save its OperationOutcome, or a Bundle of them, there; the next build shows it here.</p>")
    elif hl7.problem:
        theirs = f"<p class=\"notice\">The file <code>{esc(hl7.source)}</code> was found but not shown: {esc(hl7.problem)}.</p>"
    else:
        theirs = (f"<p>Read from <code>{esc(hl7.source)}</code> (as given; the build does not run the HL7 validator).</p>"
                  + verdict(hl7.findings) + counts_table(hl7.findings, "HL7 validator issues by severity")
                  + _by_severity(hl7.findings, pages, "hl7"))
    main = ("<h1>Quality assurance</h1>"
            + section("This build's validation", ours, sid="validation")
            + section("HL7 FHIR validator", theirs, sid="hl7-validator"))
    return Page("qa.html", "QA", main)
