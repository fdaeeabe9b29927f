"""Issues rendered for people and machines: text, JSON, OperationOutcome, JUnit, SARIF.

The OperationOutcome uses the same line/column extensions as the HL7 validator,
so pipelines built around either tool can read the other's output.
"""
from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from typing import Iterable
from xml.sax.saxutils import escape, quoteattr

from fhirpkg import __version__
from fhirpkg.issues import Issue, Severity

EXT_LINE = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line"
EXT_COL = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-col"
EXT_SOURCE = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-source"
EXT_MESSAGE_ID = "http://hl7.org/fhir/StructureDefinition/operationoutcome-message-id"
FORMATS = ("text", "json", "operationoutcome", "junit", "sarif")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def summary(issues: list[Issue], files: int, resources: int | None = None) -> str:
    """"N resources in M files: E errors, W warnings, I information" (resources: NDJSON lines and
    Bundle entries each count; without a count, files only)."""
    c = Counter(i.severity for i in issues)
    e = c[Severity.ERROR] + c[Severity.FATAL]
    where = (f"{_plural(resources, 'resource')} in {_plural(files, 'file')}" if resources is not None
             else f"{_plural(files, 'file')} checked")
    return (f"{where}: {_plural(e, 'error')}, {_plural(c[Severity.WARNING], 'warning')}, "
            f"{c[Severity.INFORMATION]} information")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """Control characters shown as escapes, so input echoed in a message cannot forge report
    lines or drive a terminal; also what XML 1.0 (JUnit) can carry."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", text)


def text_line(i: Issue) -> str:
    where = location(i)
    expr = f" ({printable(i.expression)})" if i.expression else ""
    return f"{where}: {i.severity.code} [{i.rule}] {printable(i.message)}{expr}"


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_PARENTHESIS = re.compile(r"\([^()]*\)")
_NUMBER = re.compile(r"\d+")
FIRST_LOCATIONS = 3


def message_pattern(message: str) -> str:
    """What repeats of one problem share: the message with quoted values, asides in parentheses and
    numbers masked."""
    return _NUMBER.sub("N", _PARENTHESIS.sub("(…)", _QUOTED.sub("'…'", message)))


def group(issues: Iterable[Issue]) -> list[list[Issue]]:
    """Issues grouped by (severity, rule, message pattern), worst first, each group in file order."""
    groups: dict[tuple, list[Issue]] = {}
    for i in sorted(issues, key=Issue.sort_key):
        groups.setdefault((i.severity, i.rule, message_pattern(i.message)), []).append(i)
    return sorted(groups.values(), key=lambda g: (-g[0].severity, g[0].sort_key()))


def location(i: Issue) -> str:
    where = printable(i.file or "<input>")
    return where + (f":{i.line}:{i.column or 1}" if i.line is not None else "")


def group_line(issues: list[Issue]) -> str:
    """The first issue as a full line, then how many more there are and where the next ones are."""
    line = text_line(issues[0])
    if len(issues) == 1:
        return line
    also = [location(i) for i in issues[1:FIRST_LOCATIONS]]
    more = len(issues) - FIRST_LOCATIONS
    return f"{line} [{len(issues)} like this; also {', '.join(also)}{f' and {more} more' if more > 0 else ''}]"


def to_text(issues: list[Issue], files: int, min_severity: Severity = Severity.INFORMATION, *,
            resources: int | None = None, verbose: bool = False) -> str:
    """Repeats grouped into one line each (``verbose``: every issue), then the summary."""
    shown = [i for i in issues if i.severity >= min_severity]
    lines = ([text_line(i) for i in sorted(shown, key=Issue.sort_key)] if verbose
             else [group_line(g) for g in group(shown)])
    lines.append(summary(issues, files, resources))
    return "\n".join(lines) + "\n"


def issue_dict(i: Issue) -> dict:
    return {"file": i.file, "line": i.line, "column": i.column, "severity": i.severity.code, "code": i.code,
            "rule": i.rule, "message": i.message, "expression": i.expression}


def to_json(issues: list[Issue], files: int, resources: int | None = None) -> str:
    c = Counter(i.severity.code for i in issues)
    doc = {"tool": "fhirpkg", "version": __version__, "files": files, "resources": resources,
           "summary": {s.code: c.get(s.code, 0) for s in Severity},
           "issues": [issue_dict(i) for i in sorted(issues, key=Issue.sort_key)]}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def oo_issue(i: Issue) -> dict:
    """One OperationOutcome.issue.  Line and column are valueInteger, as the HL7 validator writes
    and reads them, although the Extensions Pack 5.3.0 ballot types issue-col as a string."""
    ext = []
    if i.line is not None:
        ext.append({"url": EXT_LINE, "valueInteger": i.line})
        ext.append({"url": EXT_COL, "valueInteger": i.column or 1})
    ext.append({"url": EXT_SOURCE, "valueString": f"fhirpkg:{i.file}" if i.file else "fhirpkg"})
    ext.append({"url": EXT_MESSAGE_ID, "valueString": i.rule})
    out = {"extension": ext, "severity": i.severity.code, "code": i.code,
           "details": {"text": i.message}}
    if i.expression:
        out["expression"] = [i.expression]
    return out


def to_operation_outcome(issues: list[Issue], files: int) -> str:
    ordered = sorted(issues, key=Issue.sort_key)
    oo = {"resourceType": "OperationOutcome",
          "issue": [oo_issue(i) for i in ordered] or [
              {"severity": "information", "code": "informational", "details": {"text": "All OK"}}]}
    return json.dumps(oo, indent=2, ensure_ascii=False) + "\n"


def to_junit(issues: list[Issue], file_names: list[str]) -> str:
    """One testcase per file; errors (and fatals) fail it, warnings go to system-out."""
    by_file: dict[str, list[Issue]] = defaultdict(list)
    for i in issues:
        by_file[i.file].append(i)
    names = list(dict.fromkeys(list(file_names) + list(by_file)))
    failures = sum(1 for n in names if any(i.is_error for i in by_file.get(n, ())))
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<testsuites name="fhirpkg validate" tests="{len(names)}" failures="{failures}">',
           f'  <testsuite name="fhirpkg validate" tests="{len(names)}" failures="{failures}" errors="0">']
    for name in names:
        file_issues = sorted(by_file.get(name, ()), key=Issue.sort_key)
        errs = [i for i in file_issues if i.is_error]
        out.append(f'    <testcase classname="fhirpkg.validate" name={quoteattr(printable(name or "<input>"))}>')
        if errs:
            body = "\n".join(text_line(i) for i in errs)
            out.append(f'      <failure message={quoteattr(f"{len(errs)} error(s)")} type="fhir-validation">'
                       f"{escape(body)}</failure>")
        others = [i for i in file_issues if not i.is_error]
        if others:
            out.append(f"      <system-out>{escape(chr(10).join(text_line(i) for i in others))}</system-out>")
        out.append("    </testcase>")
    out += ["  </testsuite>", "</testsuites>"]
    return "\n".join(out) + "\n"


SARIF_LEVEL = {Severity.FATAL: "error", Severity.ERROR: "error", Severity.WARNING: "warning",
               Severity.INFORMATION: "note"}


def to_sarif(issues: list[Issue]) -> str:
    rules = sorted({i.rule for i in issues})
    results = []
    for i in sorted(issues, key=Issue.sort_key):
        loc = {"physicalLocation": {"artifactLocation": {"uri": i.file or "stdin"}}}
        if i.line is not None:
            loc["physicalLocation"]["region"] = {"startLine": i.line, "startColumn": i.column or 1}
        if i.expression:
            loc["logicalLocations"] = [{"fullyQualifiedName": i.expression, "kind": "element"}]
        results.append({"ruleId": i.rule, "level": SARIF_LEVEL[i.severity], "message": {"text": i.message},
                        "locations": [loc], "properties": {"fhirIssueType": i.code}})
    doc = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
           "runs": [{"tool": {"driver": {"name": "fhirpkg", "version": __version__,
                                         "informationUri": "https://hl7.org/fhir/R5/validation.html",
                                         "rules": [{"id": r} for r in rules]}},
                     "results": results}]}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def render(fmt: str, issues: list[Issue], file_names: list[str],
           min_severity: Severity = Severity.INFORMATION, *, resources: int | None = None,
           verbose: bool = False) -> str:
    if fmt == "text":
        return to_text(issues, len(file_names), min_severity, resources=resources, verbose=verbose)
    if fmt == "json":
        return to_json(issues, len(file_names), resources)
    if fmt == "operationoutcome":
        return to_operation_outcome(issues, len(file_names))
    if fmt == "junit":
        return to_junit(issues, file_names)
    if fmt == "sarif":
        return to_sarif(issues)
    raise ValueError(f"unknown format {fmt}")
