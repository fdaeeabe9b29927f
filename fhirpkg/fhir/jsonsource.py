"""Reading FHIR JSON: bytes to values, with source positions computed only when needed.

Values come from the C ``json`` parser (fast), with decimals kept exact
(``Decimal``, never a float) and duplicate keys, NaN and Infinity noticed.
Line and column numbers come from a second, pure-Python scan that runs only
for documents that have something to report, so clean files pay nothing.
"""
from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Iterator

from fhirpkg.issues import Issue, Severity

MAX_DEPTH = 200  # far beyond any real resource; deeper input is refused
#: Python refuses to convert integers longer than this (sys.get_int_max_str_digits, 4300 by default);
#: longer integer literals are kept as exact decimals so the validator can report them, not crash.
MAX_INT_DIGITS = 4000


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


def copy_json(value):
    """A deep copy of parsed JSON (dicts, lists, scalars) that keeps number objects (FhirDecimal)
    as they are: ten times faster than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


class BadConstant(str):
    """Stands in for NaN/Infinity, which JSON does not allow."""

    __slots__ = ()


class BadNumber(BadConstant):
    """Stands in for a number whose exponent is beyond what an exact decimal can hold (1e9999999999999999999)."""

    __slots__ = ()


def _parse_number(text: str):
    try:
        return FhirDecimal(text)
    except ArithmeticError:  # decimal.InvalidOperation: the exponent is out of range
        return BadNumber(text)


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
    _walked: dict = field(default_factory=dict, compare=False, repr=False)  # seek steps, shared by its locations
    _lines: "LineIndex | None" = field(default=None, compare=False, repr=False)

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
        loc = tuple(location)
        if self._positions is None and self.value is not None and not self.has_duplicates and self.text:
            # a well-formed text: walk to the location instead of scanning the whole text (the
            # walks of one document go on from each other, see ``seek``)
            pos = seek(self.text, loc, self._walked)
            if pos is not None:
                if self._lines is None:  # counting lines from the start per issue is O(text) each
                    self._lines = LineIndex(self.text)
                line, column = self._lines.line_col(pos)
                return line + self.line_offset, column
        pm = self.positions()
        while True:
            pos = pm.offsets.get(loc)
            if pos is not None:
                line, col = pm.line_col(pos)
                return line + self.line_offset, col
            if not loc:
                return (1 + self.line_offset, 1) if self.text else (None, None)
            loc = loc[:-1]


BOM_WARNING = Issue(Severity.WARNING, "invalid",
                    "The file starts with a UTF-8 byte order mark (JSON must not have one; it was ignored)",
                    "json-bom", line=1, column=1)


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
        issues.append(BOM_WARNING)
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


#: a JSON string, a // comment, or a /* */ comment (an unterminated one runs to the end)
_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\]|\\.)*"|//[^\n]*|/\*(?:.|\n)*?(?:\*/|\Z)')


def without_comments(text: str) -> str:
    """``text`` with its // and /* */ comments (outside strings) blanked out, newlines kept, so
    that every line and column stays where it was (the HL7 validator's JSON parser with comments allowed)."""
    if "/" not in text:
        return text
    return _STRING_OR_COMMENT.sub(
        lambda m: m.group() if m.group().startswith('"') else re.sub(r"[^\n]", " ", m.group()), text)


def parse(text: str, file: str = "", line_offset: int = 0, allow_comments: bool = False) -> Document:
    """Parse one JSON text into a Document, recording JSON-level problems (each naming ``file``).
    ``allow_comments`` reads // and /* */ comments as whitespace (JSON has none)."""
    doc = _parse(without_comments(text) if allow_comments else text, file, line_offset)
    if file:
        doc.issues = [i if i.file else i.at(file=file) for i in doc.issues]
    return doc


def _parse(text: str, file: str, line_offset: int) -> Document:
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
    bad_numbers = []

    def on_number(text: str):
        number = _parse_number(text)
        if isinstance(number, BadNumber):
            bad_numbers.append(number)
        return number

    def on_int(text: str):
        return int(text) if len(text) <= MAX_INT_DIGITS else on_number(text)

    def on_object(pairs):
        d = dict(pairs)
        if len(d) != len(pairs):
            dups[0] = True
        return d

    try:
        value = json.loads(text, parse_float=on_number, parse_int=on_int, parse_constant=on_constant,
                           object_pairs_hook=on_object)
    except json.JSONDecodeError as e:
        message = f"Invalid JSON: {e.msg}"
        if text.startswith(("//", "/*"), e.pos):
            message = "Invalid JSON: comments are not allowed in JSON (--allow-comments reads them as whitespace)"
        doc.issues.append(Issue(Severity.FATAL, "invalid", message, "json-syntax",
                                line=e.lineno + line_offset, column=e.colno))
        return doc
    except RecursionError:
        doc.issues.append(Issue(Severity.FATAL, "invalid",
                                f"The JSON is nested too deeply to be a FHIR resource (limit {MAX_DEPTH} levels)",
                                "json-depth", line=1 + line_offset, column=1))
        return doc
    if value is None:
        doc.issues.append(Issue(Severity.FATAL, "structure", "The JSON is null, not an object: a FHIR resource is "
                                "a JSON object with a resourceType", "json-not-resource",
                                line=1 + line_offset, column=1))
        return doc
    # a value nests no deeper than the text has opening brackets: most texts need no walk
    depth = _depth(value) if text.count("{") + text.count("[") > MAX_DEPTH else 0
    if depth > MAX_DEPTH:
        doc.issues.append(Issue(Severity.FATAL, "invalid",
                                f"The JSON is nested {depth} levels deep; the limit is {MAX_DEPTH}",
                                "json-depth", line=1 + line_offset, column=1))
        return doc
    for loc in _locations(value, lambda v: isinstance(v, BadNumber)) if bad_numbers else ():
        number = _locate(value, loc)
        shown = number if len(number) <= 40 else number[:20] + "..." + number[-10:]
        doc.issues.append(Issue(Severity.ERROR, "invalid", f"The number '{shown}' is out of range: its exponent "
                                "is too large to be represented", "json-number", expression=_expression(value, loc),
                                location=loc))
    if _SURROGATE_ESCAPE.search(text):
        found: list[tuple] = []
        value = _without_surrogates(value, (), found)
        for loc in found[:MAX_SURROGATE_ISSUES]:
            doc.issues.append(Issue(Severity.ERROR, "invalid",
                                    "The string has an unpaired surrogate escape (\\uD800-\\uDFFF), which is not a "
                                    "Unicode character (FHIR JSON is UTF-8); it was read as U+FFFD",
                                    "json-encoding", expression=_expression(value, loc), location=loc))
        if len(found) > MAX_SURROGATE_ISSUES:
            doc.issues.append(Issue(Severity.ERROR, "invalid", f"{len(found) - MAX_SURROGATE_ISSUES} more strings "
                                    "have unpaired surrogate escapes", "json-encoding", line=1 + line_offset,
                                    column=1))
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


#: ``\uD800``-``\uDFFF`` escapes: json.loads keeps an unpaired one as a lone surrogate, a str that
#: cannot be encoded (it would crash every report that echoes it), so such strings are repaired.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_SURROGATE_ISSUES = 20


def _locations(value, predicate) -> Iterator[tuple]:
    """JSON locations of the values for which ``predicate`` is true (iteratively, depth-first)."""
    stack = [((), value)]
    while stack:
        loc, v = stack.pop()
        if predicate(v):
            yield loc
        elif isinstance(v, dict):
            stack.extend((loc + (k,), c) for k, c in reversed(list(v.items())))
        elif isinstance(v, list):
            stack.extend((loc + (i,), c) for i, c in reversed(list(enumerate(v))))


def _locate(value, loc: tuple):
    for p in loc:
        value = value[p]
    return value


def _expression(value, loc: tuple) -> str:
    """A FHIRPath-like path for a JSON location: ``Patient.name[0].text``."""
    rt = value.get("resourceType") if isinstance(value, dict) else None
    out = rt if isinstance(rt, str) else "$"
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _without_surrogates(value, loc: tuple, found: list):
    """The value with lone surrogates replaced by U+FFFD; their locations appended to ``found``."""
    if isinstance(value, str):
        if type(value) is str and _SURROGATE.search(value):
            found.append(loc)
            return _SURROGATE.sub("\ufffd", value)
        return value
    if isinstance(value, list):
        return [_without_surrogates(v, loc + (i,), found) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if _SURROGATE.search(k):
                k = _SURROGATE.sub("\ufffd", k)
                found.append(loc + (k,))
            out[k] = _without_surrogates(v, loc + (k,), found)
        return out
    return value


def _depth(value, limit: int = MAX_DEPTH + 1) -> int:
    """Nesting depth, level by level (no recursion, no tuple per value), stopping early past ``limit``."""
    level = [value]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return depth
        deeper = []
        for v in level:
            if type(v) is dict:
                v = v.values()
            elif type(v) is not list:
                continue
            for c in v:
                if type(c) is dict or type(c) is list:
                    deeper.append(c)
        level = deeper
    return depth


def read_documents(data: bytes, file: str, ndjson: bool = False, allow_comments: bool = False) -> Iterator[Document]:
    """Decode and parse a file: one Document, or one per non-blank NDJSON line (comments are allowed
    only in a whole JSON file: NDJSON has one resource per line)."""
    text, issues = decode(data)
    if file:
        issues = [i.at(file=file) for i in issues]
    if text is None:
        yield Document(file=file, text="", issues=issues)
        return
    if not ndjson:
        doc = parse(text, file, allow_comments=allow_comments)
        doc.issues[:0] = issues
        yield doc
        return
    yield from ndjson_documents(((n, line) for n, line in enumerate(text.split("\n")) if line.strip()),
                                file, issues)


def ndjson_documents(lines: Iterable[tuple[int, str]], file: str, issues: list[Issue]) -> Iterator[Document]:
    """One Document per (0-based line number, non-blank line); ``issues`` (the file's reading
    problems) go to the first.  Shared by whole-file and streamed NDJSON reading."""
    offset = 0
    for n, line in lines:
        doc = parse(line, file, line_offset=n)
        if offset == 0:
            doc.issues[:0] = issues
        offset += 1
        yield doc
    if offset == 0:
        yield Document(file=file, text="", issues=issues + [Issue(
            Severity.FATAL, "invalid", "The NDJSON file has no resources", "json-empty-file", file=file, line=1,
            column=1)])


# --- positions --------------------------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")
_CONTROL = re.compile(r"[\x00-\x1f]")


def _string_end(text: str, pos: int) -> int:
    """The offset just past the JSON string that starts at ``pos`` (its opening quote).

    Uses ``str.find`` rather than a regular expression: the backtracking engine keeps
    state for every character of a repeated alternation, so one 100 MB string cost
    12 GB and half a minute.  The text has already been parsed, so it is valid JSON.
    """
    if text[pos] != '"':
        raise ValueError("string expected")
    i = pos + 1
    while True:
        j = text.find('"', i)
        if j < 0:
            raise ValueError("unterminated string")
        k = j
        while text[k - 1] == "\\":  # an even run of backslashes before the quote leaves it unescaped
            k -= 1
        if (j - k) % 2 == 0:
            return j + 1
        i = j + 1


#: Locations of one document found by walking to them: the walks resume where earlier ones stopped,
#: so all of a document's walks together cross its text about twice (in the C decoder), which costs
#: less than the full scan even for thousands of issues.
_SKIP = json.JSONDecoder(parse_int=str, parse_float=str, parse_constant=str)
_RESUME = object()  # key prefix of a container's resume point in a walk cache


def seek(text: str, loc: tuple, walked: dict | None = None) -> int | None:
    """The offset ``PositionMap.scan`` gives the location (or its nearest existing ancestor) in a
    well-formed JSON text without duplicate keys, found by walking only along the location:
    the values beside it are skipped by the C decoder.  None if the walk cannot be trusted
    (a syntax or nesting problem, lone surrogate escapes): the caller scans instead.

    ``walked`` (one per text, kept by its Document) remembers where each member and item a walk
    passed starts, and where in each container the walk stopped, so a later walk in the same text
    goes on from there instead of skipping the same values again."""
    if walked is None:
        walked = {}
    try:
        if not walked:
            if _SURROGATE_ESCAPE.search(text):
                return None
            pos = _WS.match(text, 0).end()
            walked[()] = (pos, pos)
        for k in range(len(loc), -1, -1):
            hit = walked.get(loc[:k])
            if hit is not None:
                start, (pos, found) = k, hit
                break
        for k in range(start, len(loc)):
            step, here = loc[k], loc[:k]
            ch = text[pos]
            if ch == "{" and isinstance(step, str):
                hit = _member(text, pos, here, step, walked)
            elif ch == "[" and isinstance(step, int) and not isinstance(step, bool) and step >= 0:
                hit = _item(text, pos, here, step, walked)
            else:
                return found
            if hit is None:
                return found  # not there: the nearest ancestor
            if hit is False:
                return None
            pos, found = walked[loc[:k + 1]] = hit
        return found
    except (IndexError, ValueError, RecursionError):
        return None


def _after(text: str, pos: int, close: str):
    """After the value at ``pos``: the next member's or item's offset, None at ``close``, False if broken."""
    pos = _WS.match(text, _SKIP.raw_decode(text, pos)[1]).end()
    if text[pos] == ",":
        return _WS.match(text, pos + 1).end()
    return None if text[pos] == close else False


def _member(text: str, pos: int, here: tuple, step: str, walked: dict):
    """(value offset, key offset) of member ``step`` of the object at ``pos``; None if absent,
    False if the text is broken. Every member read on the way is recorded in ``walked``."""
    state = walked.get((_RESUME, here))
    if state is None:  # first visit: the first key
        p = _WS.match(text, pos + 1).end()
        if text[p] == "}":
            walked[(_RESUME, here)] = None, False
            return None
    else:
        p, skip = state
        if p is None:
            return None  # every member was read before
        if skip:  # the last member read was walked into, not past
            p = _after(text, p, "}")
            if p is None or p is False:
                walked[(_RESUME, here)] = None, False
                return p
    while True:
        end = _string_end(text, p)
        key = text[p + 1:end - 1]
        if "\\" in key or _CONTROL.search(key):
            key = json.loads(text[p:end])
        key_pos = p
        p = _WS.match(text, end).end()
        if text[p] != ":":
            return False
        p = _WS.match(text, p + 1).end()
        walked.setdefault(here + (key,), (p, key_pos))
        if key == step:
            walked[(_RESUME, here)] = p, True
            return p, key_pos
        p = _after(text, p, "}")
        if p is None or p is False:
            walked[(_RESUME, here)] = None, False
            return p


def _item(text: str, pos: int, here: tuple, step: int, walked: dict):
    """(offset, offset) of item ``step`` of the array at ``pos``; None if there are fewer items,
    False if the text is broken. Every item passed on the way is recorded in ``walked``."""
    state = walked.get((_RESUME, here))
    if state is None:
        p = _WS.match(text, pos + 1).end()
        if text[p] == "]":
            walked[(_RESUME, here)] = None, 0
            return None
        i = 0
        walked.setdefault(here + (0,), (p, p))
    else:
        p, i = state
        if p is None:
            return None
    while i < step:
        p = _after(text, p, "]")
        if p is None or p is False:
            walked[(_RESUME, here)] = None, i
            return p
        i += 1
        walked.setdefault(here + (i,), (p, p))
    walked[(_RESUME, here)] = p, i
    return p, p


class LineIndex:
    """Offset -> (line, column) with memory proportional to the text / BLOCK, not to its line count.

    A list of every line start would take gigabytes for a 100 MB file of newlines;
    instead each block of BLOCK characters records how many lines start before it and
    where the last line before it began, and the rest is counted within one block.
    """

    BLOCK = 1 << 14

    def __init__(self, text: str):
        self.text = text
        self._lines: list[int] = []  # newlines before each block
        self._last: list[int] = []  # offset of the last line start at or before each block start
        lines, last = 0, 0
        for start in range(0, len(text) + 1, self.BLOCK):
            self._lines.append(lines)
            self._last.append(last)
            end = start + self.BLOCK
            n = text.count("\n", start, end)
            if n:
                lines += n
                last = text.rfind("\n", start, end) + 1

    def line_col(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        b = offset // self.BLOCK
        start = b * self.BLOCK
        line = self._lines[b] + self.text.count("\n", start, offset)
        nl = self.text.rfind("\n", start, offset)
        line_start = nl + 1 if nl >= 0 else self._last[b]
        return line + 1, offset - line_start + 1


@dataclass
class PositionMap:
    """Offsets of every value in a JSON text, keyed by JSON location.

    For an object member the offset is that of its key (where editors point);
    for an array item it is the item's first character.
    """

    text: str
    offsets: dict[tuple, int]
    lines: LineIndex
    duplicates: list[tuple[tuple, str, int]]
    constants: list[tuple[tuple, str, int]]

    def line_col(self, offset: int) -> tuple[int, int]:
        return self.lines.line_col(offset)

    @classmethod
    def scan(cls, text: str) -> "PositionMap":
        pm = cls(text, {}, LineIndex(text), [], [])
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
                end = _string_end(text, pos)
                key = text[pos + 1:end - 1]
                if "\\" in key or _CONTROL.search(key):  # escapes (or a control character json refuses)
                    key = json.loads(text[pos:end])
                key_pos = pos
                if key in seen:
                    self.duplicates.append((loc, key, key_pos))
                seen.add(key)
                pos = _WS.match(text, end).end()
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
            return _string_end(text, pos)
        m = _NUMBER.match(text, pos)
        if m and m.end() > pos:
            return m.end()
        for lit in _LITERALS:
            if text.startswith(lit, pos):
                if lit in ("NaN", "Infinity", "-Infinity"):
                    self.constants.append((loc, lit, pos))
                return pos + len(lit)
        raise ValueError("value expected")
