"""Warnings a content project has already answered, reported as information that says where.

Two kinds of answer, both only for a content project (``fhirpkg validate`` of loose files is
unchanged):

* the project's evidence register (``evidence/register.json`` in the project folder or the folder
  above it): a code of an external code system that cannot be checked offline (RxNorm, ATC,
  SNOMED CT, ...) but that the register lists as verified is information naming the register's source;
* an ``ignoreWarnings.txt`` in the same places, in the IG Publisher's format: a
  ``== Suppressed Messages ==`` line, ``# reason`` lines, then one message per line (case-insensitive,
  ``%`` at the start or end for a partial match, or a rule id); a warning it lists is information
  that gives the reason.

Errors are never touched: a code that is wrong stays wrong whatever the register says.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from fhirpkg.issues import Issue, Severity

REGISTER = Path("evidence") / "register.json"
IGNORE_FILE = "ignoreWarnings.txt"
#: The rules that say "this code could not be checked": what a verified register entry answers.
UNCHECKED_CODE_RULES = frozenset({"terminology-not-checked", "code-system-unknown"})


@dataclass
class Answers:
    """What the project says about its own warnings."""

    codes: dict[tuple[str, str], str] = field(default_factory=dict)  # (system, code) -> where it was verified
    register: str = ""
    suppressed: list[tuple[str, str]] = field(default_factory=list)  # (message pattern, reason)
    ignore_file: str = ""

    def __bool__(self) -> bool:
        return bool(self.codes or self.suppressed)


def _places(root: Path) -> list[Path]:
    return [root, root.parent] if root.parent != root else [root]


def find(root: str | Path) -> Answers:
    """The register and ignore list of the project in ``root`` (empty when it has neither)."""
    answers = Answers()
    root = Path(root)
    for place in _places(root):
        path = place / REGISTER
        if not answers.codes and path.is_file():
            answers.codes, answers.register = read_register(path), str(path)
        path = place / IGNORE_FILE
        if not answers.suppressed and path.is_file():
            answers.suppressed, answers.ignore_file = read_ignore_file(path), str(path)
    return answers


def read_register(path: Path) -> dict[tuple[str, str], str]:
    """(system, code) -> "verified_by: source" for every register entry that names both; a register
    that cannot be read answers nothing (the content tests check the register itself)."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8")).get("entries", [])
    except (OSError, ValueError, AttributeError):
        return {}
    out = {}
    for e in entries if isinstance(entries, list) else []:
        if isinstance(e, dict) and isinstance(e.get("system"), str) and isinstance(e.get("code"), str):
            source = f"{e.get('verified_by', 'listed')}: {e.get('source', 'no source given')}"
            out[(e["system"], e["code"])] = source.replace("'", "\u2019")  # quoted in messages
    return out


def read_ignore_file(path: Path) -> list[tuple[str, str]]:
    """(message pattern, reason) pairs from an IG Publisher ignoreWarnings.txt."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    out, reason = [], ""
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("=="):
            continue
        if line.startswith("#"):
            reason = line.lstrip("#").strip()
            continue
        out.append((line.lower(), reason))
    return out


def _matches(pattern: str, issue: Issue) -> bool:
    if pattern == issue.rule.lower():
        return True
    text, body = issue.message.lower(), pattern.strip("%")
    if pattern.startswith("%") and pattern.endswith("%") and len(pattern) > 1:
        return body in text
    if pattern.startswith("%"):
        return text.endswith(body)
    if pattern.endswith("%"):
        return text.startswith(body)
    return text == pattern


def _coding_at(resource, location: tuple):
    """The Coding an unchecked-code issue points at (its ``system``/``code``, or the Coding itself)."""
    node = resource
    for step in location:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    if isinstance(node, str) and location:
        return _coding_at(resource, location[:-1])
    return node if isinstance(node, dict) else None


def answer(issues: Iterable[Issue], resources: dict[str, dict], answers: Answers) -> list[Issue]:
    """The issues, with answered warnings turned into information (``resources``: file -> its JSON)."""
    out = []
    for i in issues:
        if i.severity == Severity.WARNING:
            i = _answered(i, resources, answers) or i
        out.append(i)
    return out


def _answered(i: Issue, resources: dict[str, dict], answers: Answers) -> Issue | None:
    if i.rule in UNCHECKED_CODE_RULES and answers.codes:
        coding = _coding_at(resources.get(i.file), i.location)
        if coding is not None:
            source = answers.codes.get((coding.get("system"), coding.get("code")))
            if source is not None:
                return i.at(severity=Severity.INFORMATION, code="informational",
                            message=f"Code '{coding.get('code')}' of '{coding.get('system')}' is not checked offline; "
                                    f"{answers.register} lists it as verified: '{source}'")
    for pattern, reason in answers.suppressed:
        if _matches(pattern, i):
            return i.at(severity=Severity.INFORMATION,
                        message=f"{i.message} (listed in {answers.ignore_file}{': ' + reason if reason else ''})")
    return None
