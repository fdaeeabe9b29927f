"""What changed between two releases of the content: resources and elements.

Each side is a folder of JSON resources, a Bundle, or a FHIR NPM ``package.tgz``, read
by ``fhirpkg.load``; all three become ``{"Type/id": resource}`` so any pair can be compared.  The
element walk matches array items by ``id``/``linkId``/``url`` when every item has
a unique one, so inserting an action reports one added action rather than every
later action as changed.  Numbers stay exact (``Decimal`` lexemes): ``1.0`` and
``1.00`` are different FHIR values and are reported as a change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

from fhirpkg import loader
from fhirpkg.errors import FhirpkgError, InputError
from fhirpkg.fhir.inputs import PACKAGE_SUFFIXES
from fhirpkg.fhir.jsonsource import lexeme
from fhirpkg.fhir.serialize import dumps
from fhirpkg.issues import Severity

DEFAULT_IGNORE = ("meta.lastUpdated", "meta.versionId", "text")
MATCH_KEYS = ("id", "linkId", "url")  # array items matched by the first key all items share uniquely
BRIEF_CHARS = 120  # strings longer than this are shortened in reports
BRIEF_JSON_CHARS = 300  # objects/arrays whose compact JSON is longer become a shortened text



class DiffError(FhirpkgError):
    """A side cannot be read; the message says which file and why."""


@dataclass
class Change:
    path: str  # FHIRPath-like, e.g. "PlanDefinition.action[0].title"
    kind: str  # "added" | "removed" | "changed"
    old: Any = None
    new: Any = None


@dataclass
class DiffReport:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, list[Change]] = field(default_factory=dict)
    unchanged: int = 0

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)


# --- loading ----------------------------------------------------------------------

def load_side(path: Path) -> dict[str, dict]:
    """``Type/id -> resource`` from a folder, a Bundle/resource JSON file or a package.tgz, read by
    ``fhirpkg.load`` (what ``validate`` reads: a Bundle contributes its entries, an archive its
    ``package/*.json``); a file that cannot be read is an error naming it, never skipped."""
    path = Path(path)
    if not path.exists():
        raise DiffError(f"{path}: no such file or folder")
    try:
        package = loader.load(path)
    except InputError:  # a folder with nothing to read
        raise DiffError(f"{path}: no FHIR resources found") from None
    for issue in package.issues:
        if issue.severity is Severity.FATAL and issue.rule.startswith("json-"):
            where = f" (line {issue.line})" if issue.line else ""
            raise DiffError(f"{issue.file}: not JSON: {issue.message}{where}")
        if issue.rule == "input" and issue.severity >= Severity.ERROR:
            message = issue.message.removesuffix(": skipped")
            raise DiffError(f"{issue.file}: {message[:1].lower()}{message[1:]}")
    found: dict[str, dict] = {}
    for r in package.resources:
        _add(found, r.json, r.file)
    if not found:
        if path.is_file() and not path.name.endswith(PACKAGE_SUFFIXES):
            raise DiffError(f"{path}: not a FHIR resource or Bundle (no resourceType)")
        raise DiffError(f"{path}: no FHIR resources found")
    return found


def _add(found: dict[str, dict], resource: dict, origin: str) -> None:
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid:
        raise DiffError(f"{origin}: {resource['resourceType']} has no id, so it cannot be matched across releases")
    key = f"{resource['resourceType']}/{rid}"
    if key in found:
        raise DiffError(f"{origin}: {key} appears more than once")
    found[key] = resource


# --- comparing --------------------------------------------------------------------

def diff(old: dict[str, dict], new: dict[str, dict], ignore: Iterable[str] = DEFAULT_IGNORE) -> DiffReport:
    """Resources added, removed and changed (with element changes) from ``old`` to ``new``."""
    ignore = tuple(ignore)
    report = DiffReport(added=sorted(set(new) - set(old)), removed=sorted(set(old) - set(new)))
    for key in sorted(set(old) & set(new)):
        changes = diff_resource(old[key], new[key], ignore)
        if changes:
            report.changed[key] = changes
        else:
            report.unchanged += 1
    return report


def diff_resource(old: dict, new: dict, ignore: Iterable[str] = DEFAULT_IGNORE) -> list[Change]:
    """Element-level changes between two versions of one resource."""
    ignore = tuple(ignore)
    root = new.get("resourceType") or old.get("resourceType") or "Resource"
    out: list[Change] = []
    _walk(prune(old, ignore), prune(new, ignore), root, out)
    return out


def prune(value: Any, ignore: tuple[str, ...], rel: str = "") -> Any:
    """A copy without the ignored element paths (dotted, no indexes), dropping emptied objects."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            sub = f"{rel}.{k}" if rel else k
            if sub in ignore:
                continue
            v2 = prune(v, ignore, sub)
            if v2 in ({}, []) and v not in ({}, []):
                continue  # only ignored content was inside
            out[k] = v2
        return out
    if isinstance(value, list):
        return [prune(v, ignore, rel) for v in value]
    return value


def same(a: Any, b: Any) -> bool:
    """JSON equality that keeps FHIR's distinctions: 1 != 1.0, true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, Decimal)) and isinstance(b, (int, Decimal)):
        return lexeme(a) == lexeme(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _walk(a: Any, b: Any, path: str, out: list[Change]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            sub = f"{path}.{k}"
            if k not in b:
                out.append(Change(sub, "removed", brief(a[k]), None))
            elif k not in a:
                out.append(Change(sub, "added", None, brief(b[k])))
            else:
                _walk(a[k], b[k], sub, out)
    elif isinstance(a, list) and isinstance(b, list):
        key = match_key(a, b)
        if key:
            _walk_keyed(a, b, key, path, out)
        else:
            for i in range(max(len(a), len(b))):
                if i >= len(b):
                    out.append(Change(f"{path}[{i}]", "removed", brief(a[i]), None))
                elif i >= len(a):
                    out.append(Change(f"{path}[{i}]", "added", None, brief(b[i])))
                else:
                    _walk(a[i], b[i], f"{path}[{i}]", out)
    elif not same(a, b):
        out.append(Change(path, "changed", brief(a), brief(b)))


def match_key(a: list, b: list) -> str | None:
    """The first of MATCH_KEYS that every item on both sides has, uniquely per side."""
    items = a + b
    if not a or not b or not all(isinstance(x, dict) for x in items):
        return None
    for key in MATCH_KEYS:
        if all(isinstance(x.get(key), str) for x in items):
            if len({x[key] for x in a}) == len(a) and len({x[key] for x in b}) == len(b):
                return key
    return None


def _walk_keyed(a: list, b: list, key: str, path: str, out: list[Change]) -> None:
    """Items matched by ``key``; new-side indexes for kept/added items, old-side for removed."""
    old_at = {x[key]: i for i, x in enumerate(a)}
    new_keys = {x[key] for x in b}
    common_old = [x[key] for x in a if x[key] in new_keys]
    common_new = [x[key] for x in b if x[key] in old_at]
    if common_old != common_new:
        out.append(Change(path, "changed", brief([f"{key}={k}" for k in common_old]),
                          brief([f"{key}={k}" for k in common_new])))
    for i, x in enumerate(a):
        if x[key] not in new_keys:
            out.append(Change(f"{path}[{i}]", "removed", brief(x), None))
    for j, y in enumerate(b):
        if y[key] in old_at:
            _walk(a[old_at[y[key]]], y, f"{path}[{j}]", out)
        else:
            out.append(Change(f"{path}[{j}]", "added", None, brief(y)))


def brief(value: Any) -> Any:
    """A value short enough for a report line: long strings cut, big objects as text."""
    if isinstance(value, str):
        return value if len(value) <= BRIEF_CHARS else value[:BRIEF_CHARS - 1] + "…"
    if isinstance(value, (dict, list)):
        text = dumps(value, indent=None)
        if len(text) > BRIEF_JSON_CHARS:
            return text[:BRIEF_JSON_CHARS - 1] + "…"
        return _short_strings(value)
    return value


def _short_strings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _short_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short_strings(v) for v in value]
    return brief(value) if isinstance(value, str) else value


# --- output -----------------------------------------------------------------------

def _text_value(value: Any) -> str:
    return value if isinstance(value, str) and value.endswith("…") and value[:1] in "{[" else dumps(value, indent=None)


def render_text(report: DiffReport) -> str:
    """Release-notes-style text: resources first, then element changes per resource."""
    lines: list[str] = []
    if report.added:
        lines.append(f"Added ({len(report.added)}):")
        lines += [f"  + {k}" for k in report.added]
    if report.removed:
        lines.append(f"Removed ({len(report.removed)}):")
        lines += [f"  - {k}" for k in report.removed]
    if report.changed:
        lines.append(f"Changed ({len(report.changed)}):")
        for key, changes in report.changed.items():
            lines.append(f"  ~ {key} ({len(changes)} change{'s' if len(changes) != 1 else ''})")
            for c in changes:
                if c.kind == "added":
                    lines.append(f"      added   {c.path} = {_text_value(c.new)}")
                elif c.kind == "removed":
                    lines.append(f"      removed {c.path} (was {_text_value(c.old)})")
                else:
                    lines.append(f"      changed {c.path}: {_text_value(c.old)} -> {_text_value(c.new)}")
    if report.identical:
        lines.append("No differences.")
    lines.append(f"{len(report.added)} added, {len(report.removed)} removed, "
                 f"{len(report.changed)} changed, {report.unchanged} unchanged")
    return "\n".join(lines) + "\n"


def to_dict(report: DiffReport) -> dict:
    return {
        "summary": {"added": len(report.added), "removed": len(report.removed),
                    "changed": len(report.changed), "unchanged": report.unchanged},
        "added": list(report.added),
        "removed": list(report.removed),
        "changed": {key: [{"path": c.path, "kind": c.kind, "old": c.old, "new": c.new} for c in changes]
                    for key, changes in report.changed.items()},
    }


def render_json(report: DiffReport) -> str:
    """The report as JSON (exact numbers); shape: summary, added, removed, changed{key: [changes]}."""
    return dumps(to_dict(report)) + "\n"
