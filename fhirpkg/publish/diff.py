"""What changed between two releases of the content: resources and elements.

Each side is a folder of JSON resources, a Bundle, or a FHIR NPM ``package.tgz``;
all three become ``{"Type/id": resource}`` so any pair can be compared.  The
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

from fhirpkg.errors import FhirpkgError
from fhirpkg.fhir.archive import ESCAPES, TOO_LARGE, Archive, ArchiveError
from fhirpkg.fhir.inputs import SKIP_NAMES
from fhirpkg.fhir.jsonsource import lexeme, read_documents
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
    """``Type/id -> resource`` from a folder, a Bundle/resource JSON file or a package.tgz."""
    path = Path(path)
    if not path.exists():
        raise DiffError(f"{path}: no such file or folder")
    if path.is_dir():
        found = _from_folder(path)
    elif _is_archive(path):
        found = _from_tgz(path)
    else:
        found = _from_json_file(path)
    if not found:
        raise DiffError(f"{path}: no FHIR resources found")
    return found


def _is_archive(path: Path) -> bool:
    if path.name.endswith((".tgz", ".tar.gz", ".tar")):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError as e:
        raise DiffError(f"{path}: cannot read ({e.strerror})") from None


def _parse_json(data: bytes, name: str) -> Any:
    """JSON value with exact decimals; DiffError with the reader's first fatal message."""
    doc = next(read_documents(data, name))
    if not doc.ok:
        first = next((i for i in doc.issues if i.severity is Severity.FATAL), None)
        where = f" (line {first.line})" if first and first.line else ""
        raise DiffError(f"{name}: not JSON: {first.message if first else 'unreadable'}{where}")
    return doc.value


def _add(found: dict[str, dict], resource: Any, origin: str) -> None:
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid:
        raise DiffError(f"{origin}: {resource['resourceType']} has no id, so it cannot be matched across releases")
    key = f"{resource['resourceType']}/{rid}"
    if key in found:
        raise DiffError(f"{origin}: {key} appears more than once")
    found[key] = resource


def _resources_in(value: Any) -> Iterable[Any]:
    """A Bundle contributes its entries' resources; anything else is one resource."""
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        for entry in value.get("entry") or []:
            if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                yield entry["resource"]
    else:
        yield value


def _from_json_file(path: Path) -> dict[str, dict]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DiffError(f"{path}: cannot read ({e.strerror})") from None
    value = _parse_json(data, str(path))
    if not isinstance(value, dict) or "resourceType" not in value:
        raise DiffError(f"{path}: not a FHIR resource or Bundle (no resourceType)")
    found: dict[str, dict] = {}
    for res in _resources_in(value):
        _add(found, res, str(path))
    return found


def _from_folder(folder: Path) -> dict[str, dict]:
    """Every *.json below the folder (hidden folders and package bookkeeping skipped).

    A Bundle file inside a folder counts as one resource (a folder is a set of
    resources); pass the Bundle file itself to compare its entries.
    """
    found: dict[str, dict] = {}
    for file in sorted(folder.rglob("*.json")):
        rel = file.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or file.name in SKIP_NAMES or not file.is_file():
            continue
        try:
            data = file.read_bytes()
        except OSError as e:
            raise DiffError(f"{file}: cannot read ({e.strerror})") from None
        _add(found, _parse_json(data, str(file)), str(file))
    return found


def _from_tgz(path: Path) -> dict[str, dict]:
    """Resources under package/ of a FHIR NPM archive, read in memory within ``fhirpkg.fhir.archive``'s limits."""
    found: dict[str, dict] = {}
    try:
        with Archive(path) as archive:
            for member in archive.members():
                if member.problem == ESCAPES:
                    raise DiffError(f"{path}: member '{member.name}' {ESCAPES}")
                rel = member.under("package")
                if not member.is_file or not rel or rel[-1] in SKIP_NAMES or rel[0] == "other" \
                        or not rel[-1].endswith(".json"):
                    continue
                if member.too_large:
                    raise DiffError(f"{path}: member '{member.name}' {TOO_LARGE}")
                value = _parse_json(archive.read(member), f"{path}:{member.name}")
                if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
                    _add(found, value, f"{path}:{member.name}")
    except ArchiveError as e:
        raise DiffError(str(e)) from None
    return found


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
