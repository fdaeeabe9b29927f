"""Issues rendered for people and machines: text, JSON, OperationOutcome, JUnit, SARIF.

The OperationOutcome uses the same line/column extensions as the HL7 validator,
so pipelines built around either tool can read the other's output.
"""
from __future__ import annotations

import heapq
import json
import pickle
import re
import tempfile
from collections import Counter, defaultdict
from json.encoder import encode_basestring as _encode_string
from pathlib import Path
from typing import Iterable, Iterator

from fhirpkg import __version__
from fhirpkg.issues import Issue, Severity

EXT_LINE = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line"
EXT_COL = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-col"
EXT_SOURCE = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-source"
EXT_MESSAGE_ID = "http://hl7.org/fhir/StructureDefinition/operationoutcome-message-id"
FORMATS = ("text", "json", "operationoutcome", "junit", "sarif")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def summary(issues: Iterable[Issue] | Counter, files: int, resources: int | None = None) -> str:
    """"N resources in M files: E errors, W warnings, I information" (resources: NDJSON lines and
    Bundle entries each count; without a count, files only).  ``issues``, or their counts by
    severity."""
    c = issues if isinstance(issues, Counter) else Counter(i.severity for i in issues)
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


def location(i: Issue) -> str:
    where = printable(i.file or "<input>")
    return where + (f":{i.line}:{i.column or 1}" if i.line is not None else "")


def group_line(first: list[Issue], count: int) -> str:
    """A group of ``count`` like issues: the first as a full line, then how many more there are
    and where the next ones (``first[1:]``) are."""
    line = text_line(first[0])
    if count == 1:
        return line
    also = [location(i) for i in first[1:FIRST_LOCATIONS]]
    more = count - FIRST_LOCATIONS
    return f"{line} [{count} like this; also {', '.join(also)}{f' and {more} more' if more > 0 else ''}]"


def issue_dict(i: Issue) -> dict:
    return {"file": i.file, "line": i.line, "column": i.column, "severity": i.severity.code, "code": i.code,
            "rule": i.rule, "message": i.message, "expression": i.expression}


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


SARIF_LEVEL = {Severity.FATAL: "error", Severity.ERROR: "error", Severity.WARNING: "warning",
               Severity.INFORMATION: "note"}


def sarif_result(i: Issue) -> dict:
    loc = {"physicalLocation": {"artifactLocation": {"uri": i.file or "stdin"}}}
    if i.line is not None:
        loc["physicalLocation"]["region"] = {"startLine": i.line, "startColumn": i.column or 1}
    if i.expression:
        loc["logicalLocations"] = [{"fullyQualifiedName": i.expression, "kind": "element"}]
    return {"ruleId": i.rule, "level": SARIF_LEVEL[i.severity], "message": {"text": i.message},
            "locations": [loc], "properties": {"fhirIssueType": i.code}}


# --- collecting issues in memory that does not grow with the input --------------------------

SPILL_AFTER = 20_000  # issues held before a sorted run of them goes to a temporary file
_BATCH = 1_000        # issues per pickle in a run file


class Collector:
    """The issues of a run as validation yields them, kept for a report written at the end.

    Counts, rule ids and file names are kept in memory.  For the grouped text report only the
    groups are kept (a count and the first places of each); for the other reports every issue,
    in sorted runs spilled to a temporary folder past ``spill_after`` and merged when written,
    so a 1 GB NDJSON with millions of issues is reported in bounded memory.  Use it as a
    context manager (the runs are removed on exit)."""

    def __init__(self, keep_all: bool = True, spill_after: int = SPILL_AFTER):
        self.files: list[str] = []
        self.resources = 0
        self.counts: Counter = Counter()
        self.rules: set[str] = set()
        self.issue_files: dict = {}  # the files issues name, in arrival order (members of archives too)
        self.keep_all = keep_all
        self._spill_after = max(spill_after, 1)
        self._groups: dict[tuple, list] = {}  # (severity, rule, pattern) -> [count, first issues]
        self._held: list[Issue] = []
        self._runs: list[Path] = []
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> "Collector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._held, self._runs = [], []
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def add_file(self, name: str) -> None:
        self.files.append(name)

    def add(self, issues: Iterable[Issue], resources: int = 0) -> None:
        self.resources += resources
        for i in issues:
            self.counts[i.severity] += 1
            self.rules.add(i.rule)
            self.issue_files.setdefault(i.file)
            if self.keep_all:
                self._held.append(i)
            else:
                self._group(i)
        if len(self._held) >= self._spill_after:
            self._spill()

    @property
    def errors(self) -> int:
        return self.counts[Severity.ERROR] + self.counts[Severity.FATAL]

    def any_at_least(self, severity: Severity) -> bool:
        return any(n for s, n in self.counts.items() if s >= severity)

    def _group(self, i: Issue) -> None:
        _add_to_group(self._groups, i)

    def groups(self, min_severity: Severity = Severity.INFORMATION) -> list[tuple[int, list[Issue]]]:
        """(count, first issues) per (severity, rule, message pattern), worst first, then in file order."""
        groups = self._groups
        if self.keep_all:
            groups = {}
            for i in self.issues():
                _add_to_group(groups, i)
        found = [g for key, g in groups.items() if key[0] >= min_severity]
        return sorted(((n, first) for n, first in found), key=lambda g: (-g[1][0].severity, g[1][0].sort_key()))

    def _spill(self) -> None:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fhirpkg-issues-")
        self._held.sort(key=Issue.sort_key)
        run = Path(self._tmp.name) / f"run-{len(self._runs)}.pickle"
        with open(run, "wb") as f:
            for k in range(0, len(self._held), _BATCH):
                pickle.dump(self._held[k:k + _BATCH], f, protocol=pickle.HIGHEST_PROTOCOL)
        self._runs.append(run)
        self._held = []

    def issues(self) -> Iterator[Issue]:
        """Every issue in report order (``Issue.sort_key``; equal keys in arrival order)."""
        if not self.keep_all:
            raise ValueError("this collector kept only the groups of the text report")
        self._held.sort(key=Issue.sort_key)  # stable: arrival order among equals, as runs merge
        if not self._runs:
            return iter(self._held)
        return heapq.merge(*(_read_run(r) for r in self._runs), iter(self._held), key=Issue.sort_key)


def _add_to_group(groups: dict[tuple, list], i: Issue) -> None:
    """A group of (severity, rule, message pattern) keeps its count and its first FIRST_LOCATIONS
    issues in report order (ties in arrival order, as a stable sort of every issue would give)."""
    g = groups.get(key := (i.severity, i.rule, message_pattern(i.message)))
    if g is None:
        groups[key] = [1, [i]]
        return
    g[0] += 1
    first, k = g[1], i.sort_key()
    if len(first) < FIRST_LOCATIONS or k < first[-1].sort_key():
        at = len(first)
        while at and k < first[at - 1].sort_key():
            at -= 1
        first.insert(at, i)
        del first[FIRST_LOCATIONS:]


def _read_run(path: Path) -> Iterator[Issue]:
    with open(path, "rb") as f:
        while True:
            try:
                yield from pickle.load(f)
            except EOFError:
                return


def collect(issues: Iterable[Issue], file_names: list[str], resources: int | None = None,
            keep_all: bool = True) -> Collector:
    c = Collector(keep_all)
    for name in file_names:
        c.add_file(name)
    c.add(issues, resources or 0)
    return c


# --- writing reports, a piece at a time ------------------------------------------------------

_HOLE = "\ue000fhirpkg-items\ue000"  # stands for a streamed list in a document dumped around it


def _json_around(doc: dict, items: Iterable[dict]) -> Iterator[str]:
    """``json.dumps(doc, indent=2, ensure_ascii=False)`` where the value ``_HOLE`` in ``doc`` is
    the list ``items``, written item by item."""
    head, tail = json.dumps(doc, indent=2, ensure_ascii=False).split(json.dumps(_HOLE, ensure_ascii=False))
    line = head[head.rfind("\n") + 1:]
    pad = " " * (len(line) - len(line.lstrip(" ")))
    yield head + "["
    sep = "\n"
    inner = pad + "  "
    for item in items:
        yield sep + inner + json_indented(item, inner)
        sep = ",\n"
    yield ("]" if sep == "\n" else "\n" + pad + "]") + tail + "\n"


_LITERALS = {True: "true", False: "false", None: "null"}


def json_indented(value, pad: str) -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False)`` with every line after the first
    prefixed by ``pad``: the same text, built from the C string encoder (json's indenting
    encoder is pure Python, and a bulk report has an issue per few resources)."""
    if isinstance(value, str):
        return _encode_string(value)
    if value is None or value is True or value is False:
        return _LITERALS[value]
    if type(value) is int:
        return int.__repr__(value)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        if not value:
            return "{}"
        inner = pad + "  "
        return "{\n" + ",\n".join(f"{inner}{_encode_string(k)}: {json_indented(v, inner)}" for k, v in value.items()) \
            + "\n" + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        inner = pad + "  "
        return "[\n" + ",\n".join(inner + json_indented(v, inner) for v in value) + "\n" + pad + "]"
    return "\n".join(pad + line if n else line for n, line in
                     enumerate(json.dumps(value, indent=2, ensure_ascii=False).split("\n")))


def text_chunks(c: Collector, min_severity: Severity = Severity.INFORMATION, *,
                resources: int | None = None, verbose: bool = False) -> Iterator[str]:
    """Repeats grouped into one line each (``verbose``: every issue), then the summary."""
    if verbose:
        for i in c.issues():
            if i.severity >= min_severity:
                yield text_line(i) + "\n"
    else:
        for n, first in c.groups(min_severity):
            yield group_line(first, n) + "\n"
    yield summary(c.counts, len(c.files), resources) + "\n"


def json_chunks(c: Collector, resources: int | None) -> Iterator[str]:
    doc = {"tool": "fhirpkg", "version": __version__, "files": len(c.files), "resources": resources,
           "summary": {s.code: c.counts.get(s, 0) for s in Severity}, "issues": _HOLE}
    return _json_around(doc, (issue_dict(i) for i in c.issues()))


def operation_outcome_chunks(c: Collector) -> Iterator[str]:
    if not sum(c.counts.values()):
        yield json.dumps({"resourceType": "OperationOutcome", "issue": [
            {"severity": "information", "code": "informational", "details": {"text": "All OK"}}]},
            indent=2, ensure_ascii=False) + "\n"
        return
    yield from _json_around({"resourceType": "OperationOutcome", "issue": _HOLE}, (oo_issue(i) for i in c.issues()))


def junit_chunks(c: Collector) -> Iterator[str]:
    """One testcase per file; errors (and fatals) fail it, warnings go to system-out.  Test cases
    are in input order and issues in file order, so this one report holds every issue at once."""
    from xml.sax.saxutils import escape, quoteattr  # imported here: it pulls in urllib and ssl (start-up time)

    by_file: dict[str, list[Issue]] = defaultdict(list)
    for i in c.issues():
        by_file[i.file].append(i)
    names = list(dict.fromkeys(list(c.files) + list(c.issue_files)))
    failures = sum(1 for n in names if any(i.is_error for i in by_file.get(n, ())))
    yield ('<?xml version="1.0" encoding="UTF-8"?>\n'
           f'<testsuites name="fhirpkg validate" tests="{len(names)}" failures="{failures}">\n'
           f'  <testsuite name="fhirpkg validate" tests="{len(names)}" failures="{failures}" errors="0">\n')
    for name in names:
        file_issues = by_file.pop(name, ())
        errs = [i for i in file_issues if i.is_error]
        out = [f'    <testcase classname="fhirpkg.validate" name={quoteattr(printable(name or "<input>"))}>']
        if errs:
            body = "\n".join(text_line(i) for i in errs)
            out.append(f'      <failure message={quoteattr(f"{len(errs)} error(s)")} type="fhir-validation">'
                       f"{escape(body)}</failure>")
        others = [i for i in file_issues if not i.is_error]
        if others:
            out.append(f"      <system-out>{escape(chr(10).join(text_line(i) for i in others))}</system-out>")
        out.append("    </testcase>")
        yield "\n".join(out) + "\n"
    yield "  </testsuite>\n</testsuites>\n"


def sarif_chunks(c: Collector) -> Iterator[str]:
    doc = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
           "runs": [{"tool": {"driver": {"name": "fhirpkg", "version": __version__,
                                         "informationUri": "https://hl7.org/fhir/R5/validation.html",
                                         "rules": [{"id": r} for r in sorted(c.rules)]}},
                     "results": _HOLE}]}
    return _json_around(doc, (sarif_result(i) for i in c.issues()))


def chunks(fmt: str, c: Collector, min_severity: Severity = Severity.INFORMATION, *,
           resources: int | None = None, verbose: bool = False) -> Iterator[str]:
    """The report in ``fmt``, a piece at a time (what ``render`` joins)."""
    if fmt == "text":
        return text_chunks(c, min_severity, resources=resources, verbose=verbose)
    if fmt == "json":
        return json_chunks(c, resources)
    if fmt == "operationoutcome":
        return operation_outcome_chunks(c)
    if fmt == "junit":
        return junit_chunks(c)
    if fmt == "sarif":
        return sarif_chunks(c)
    raise ValueError(f"unknown format {fmt}")


def render(fmt: str, issues: list[Issue], file_names: list[str],
           min_severity: Severity = Severity.INFORMATION, *, resources: int | None = None,
           verbose: bool = False) -> str:
    """The whole report as one string."""
    with collect(issues, file_names, resources, keep_all=fmt != "text" or verbose) as c:
        return "".join(chunks(fmt, c, min_severity, resources=resources, verbose=verbose))
