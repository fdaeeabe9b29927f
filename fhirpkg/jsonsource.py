"""Reading FHIR JSON: bytes to values, with source positions computed only when needed.

Values come from the C ``json`` parser (fast), with decimals kept exact
(``Decimal``, never a float) and duplicate keys, NaN and Infinity noticed.
Line and column numbers come from a second, pure-Python scan that runs only
for documents that have something to report, so clean files pay nothing.
"""
from __future__ import annotations

import bisect
import codecs
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterator

from .issues import Issue, Severity

MAX_DEPTH = 200  # far beyond any real resource; deeper input is refused


class FhirDecimal(Decimal):
    """An exact JSON number that remembers how it was written (FHIR checks the lexeme)."""

    __slots__ = ("raw",)

    def __new__(cls, text: str):
        obj = Decimal.__new__(cls, text)
        obj.raw = text
        return obj


def lexeme(number) -> str:
    """The JSON text of a parsed number."""
    return getattr(number, "raw", None) or str(number)


class BadConstant(str):
    """Stands in for NaN/Infinity, which JSON does not allow."""

    __slots__ = ()


@dataclass
class Document:
    """One JSON text (a file, or one line of an NDJSON file) and its parsed value."""

    file: str
    text: str
    value: Any = None
    line_offset: int = 0  # lines before this text in its file (NDJSON)
    issues: list[Issue] = field(default_factory=list)  # reading problems (JSON rules)
    has_duplicates: bool = False
    _positions: "PositionMap | None" = None

    @property
    def ok(self) -> bool:
        """True when a value was read (the document can be validated further)."""
        return self.value is not None and not any(i.severity is Severity.FATAL for i in self.issues)

    def positions(self) -> "PositionMap":
        if self._positions is None:
            self._positions = PositionMap.scan(self.text)
        return self._positions

    def locate(self, location: tuple) -> tuple[int | None, int | None]:
        """Line and column (1-based) of a JSON location, or of its nearest ancestor."""
        pm = self.positions()
        loc = tuple(location)
        while True:
            pos = pm.offsets.get(loc)
            if pos is not None:
                line, col = pm.line_col(pos)
                return line + self.line_offset, col
            if not loc:
                return (1 + self.line_offset, 1) if self.text else (None, None)
            loc = loc[:-1]


def decode(data: bytes) -> tuple[str | None, list[Issue]]:
    """Bytes to text: UTF-8 only; a BOM is tolerated with a warning."""
    issues: list[Issue] = []
    if not data.strip():
        return None, [Issue(Severity.FATAL, "invalid", "The file is empty: expected a FHIR JSON resource",
                            "json-empty-file", line=1, column=1)]
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)) or (len(data) >= 4 and data[1:4] == b"\0\0\0"):
        return None, [_fatal("json-encoding", "The file is UTF-32 encoded; FHIR JSON must be UTF-8")]
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (len(data) >= 2 and (data[0] == 0 or data[1] == 0)):
        return None, [_fatal("json-encoding", "The file is UTF-16 encoded; FHIR JSON must be UTF-8")]
    if data.startswith(codecs.BOM_UTF8):
        issues.append(Issue(Severity.WARNING, "invalid",
                            "The file starts with a UTF-8 byte order mark (JSON must not have one; it was ignored)",
                            "json-bom", line=1, column=1))
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        return None, issues + [Issue(Severity.FATAL, "invalid",
                                     f"Invalid UTF-8: byte 0x{data[e.start]:02x} at offset {e.start} "
                                     f"cannot start or continue a character", "json-encoding", line=line, column=col)]
    if "\0" in text:
        return None, issues + [_fatal("json-binary", "The file contains NUL characters: it is binary, not JSON")]
    return text, issues


def _fatal(rule: str, message: str) -> Issue:
    return Issue(Severity.FATAL, "invalid", message, rule, line=1, column=1)


def parse(text: str, file: str = "", line_offset: int = 0) -> Document:
    """Parse one JSON text into a Document, recording JSON-level problems."""
    doc = Document(file=file, text=text, line_offset=line_offset)
    stripped = text.lstrip()
    if stripped.startswith("<"):
        doc.issues.append(Issue(Severity.FATAL, "invalid",
                                "This looks like XML; fhirpkg validates FHIR JSON only", "json-not-json",
                                line=1 + line_offset, column=1))
        return doc
    bad_constants: list[str] = []

    def on_constant(name: str):
        bad_constants.append(name)
        return BadConstant(name)

    dups = [False]

    def on_object(pairs):
        d = dict(pairs)
        if len(d) != len(pairs):
            dups[0] = True
        return d

    try:
        value = json.loads(text, parse_float=FhirDecimal, parse_constant=on_constant, object_pairs_hook=on_object)
    except json.JSONDecodeError as e:
        doc.issues.append(Issue(Severity.FATAL, "invalid", f"Invalid JSON: {e.msg}", "json-syntax",
                                line=e.lineno + line_offset, column=e.colno))
        return doc
    except RecursionError:
        doc.issues.append(Issue(Severity.FATAL, "invalid",
                                f"The JSON is nested too deeply to be a FHIR resource (limit {MAX_DEPTH} levels)",
                                "json-depth", line=1 + line_offset, column=1))
        return doc
    depth = _depth(value)
    if depth > MAX_DEPTH:
        doc.issues.append(Issue(Severity.FATAL, "invalid",
                                f"The JSON is nested {depth} levels deep; the limit is {MAX_DEPTH}",
                                "json-depth", line=1 + line_offset, column=1))
        return doc
    doc.value = value
    doc.has_duplicates = dups[0]
    if bad_constants or dups[0]:
        pm = doc.positions()
        for loc, key, pos in pm.duplicates:
            line, col = pm.line_col(pos)
            doc.issues.append(Issue(Severity.ERROR, "invalid",
                                    f"Duplicate JSON property '{key}' (a JSON object must not repeat a name; "
                                    f"the last value was kept)", "json-duplicate-key",
                                    line=line + line_offset, column=col, location=loc + (key,)))
        for loc, name, pos in pm.constants:
            line, col = pm.line_col(pos)
            doc.issues.append(Issue(Severity.ERROR, "invalid", f"'{name}' is not a valid JSON number",
                                    "json-number", line=line + line_offset, column=col, location=loc))
    return doc


def _depth(value, limit: int = MAX_DEPTH + 1) -> int:
    """Nesting depth, iteratively, stopping early past ``limit``."""
    best = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > best:
            best = d
            if best > limit:
                return best
        if isinstance(v, dict):
            stack.extend((c, d + 1) for c in v.values() if isinstance(c, (dict, list)))
        elif isinstance(v, list):
            stack.extend((c, d + 1) for c in v if isinstance(c, (dict, list)))
    return best


def read_documents(data: bytes, file: str, ndjson: bool = False) -> Iterator[Document]:
    """Decode and parse a file: one Document, or one per non-blank NDJSON line."""
    text, issues = decode(data)
    if text is None:
        yield Document(file=file, text="", issues=issues)
        return
    if not ndjson:
        doc = parse(text, file)
        doc.issues[:0] = issues
        yield doc
        return
    offset = 0
    for n, line in enumerate(text.split("\n")):
        if line.strip():
            doc = parse(line, file, line_offset=n)
            if offset == 0:
                doc.issues[:0] = issues
            offset += 1
            yield doc
    if offset == 0:
        yield Document(file=file, text="", issues=issues + [Issue(
            Severity.FATAL, "invalid", "The NDJSON file has no resources", "json-empty-file", line=1, column=1)])


# --- positions --------------------------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\.)*"', re.S)
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")


@dataclass
class PositionMap:
    """Offsets of every value in a JSON text, keyed by JSON location.

    For an object member the offset is that of its key (where editors point);
    for an array item it is the item's first character.
    """

    text: str
    offsets: dict[tuple, int]
    line_starts: list[int]
    duplicates: list[tuple[tuple, str, int]]
    constants: list[tuple[tuple, str, int]]

    def line_col(self, offset: int) -> tuple[int, int]:
        i = bisect.bisect_right(self.line_starts, offset) - 1
        return i + 1, offset - self.line_starts[i] + 1

    @classmethod
    def scan(cls, text: str) -> "PositionMap":
        line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        pm = cls(text, {}, line_starts, [], [])
        try:
            pos = _WS.match(text, 0).end()
            pm._value(pos, ())
        except (IndexError, ValueError, RecursionError):
            pass  # a syntax error: positions found so far remain usable
        return pm

    def _value(self, pos: int, loc: tuple) -> int:
        text = self.text
        self.offsets.setdefault(loc, pos)
        ch = text[pos]
        if ch == "{":
            pos = _WS.match(text, pos + 1).end()
            if text[pos] == "}":
                return pos + 1
            seen = set()
            while True:
                m = _STRING.match(text, pos)
                if not m:
                    raise ValueError("key expected")
                key = json.loads(m.group())
                key_pos = pos
                if key in seen:
                    self.duplicates.append((loc, key, key_pos))
                seen.add(key)
                pos = _WS.match(text, m.end()).end()
                if text[pos] != ":":
                    raise ValueError(": expected")
                pos = _WS.match(text, pos + 1).end()
                child = loc + (key,)
                # the last occurrence wins (as in the parsed value), but point at the first
                first = child not in self.offsets
                pos = self._value(pos, child)
                if first:
                    self.offsets[child] = key_pos
                pos = _WS.match(text, pos).end()
                if text[pos] == ",":
                    pos = _WS.match(text, pos + 1).end()
                    continue
                if text[pos] == "}":
                    return pos + 1
                raise ValueError(", or } expected")
        if ch == "[":
            pos = _WS.match(text, pos + 1).end()
            if text[pos] == "]":
                return pos + 1
            i = 0
            while True:
                pos = self._value(pos, loc + (i,))
                i += 1
                pos = _WS.match(text, pos).end()
                if text[pos] == ",":
                    pos = _WS.match(text, pos + 1).end()
                    continue
                if text[pos] == "]":
                    return pos + 1
                raise ValueError(", or ] expected")
        if ch == '"':
            m = _STRING.match(text, pos)
            if not m:
                raise ValueError("bad string")
            return m.end()
        m = _NUMBER.match(text, pos)
        if m and m.end() > pos:
            return m.end()
        for lit in _LITERALS:
            if text.startswith(lit, pos):
                if lit in ("NaN", "Infinity", "-Infinity"):
                    self.constants.append((loc, lit, pos))
                return pos + len(lit)
        raise ValueError("value expected")
