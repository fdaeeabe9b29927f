"""CQL system values the ELM evaluator works with: Code, Concept, DateTime/Date, Interval, Quantity.

Comparisons follow CQL's rules for uncertainty: two date-times known to different precisions
that agree as far as both go compare as unknown (None), never as equal.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass

_DT = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
                 r"(Z|[+-]\d{2}:\d{2})?)?)?)?$")
PRECISIONS = ("year", "month", "day", "hour", "minute", "second", "millisecond")


@dataclass(frozen=True)
class Code:
    code: str | None
    system: str | None = None
    version: str | None = None
    display: str | None = None


@dataclass(frozen=True)
class Concept:
    codes: tuple[Code, ...]
    display: str | None = None


@dataclass(frozen=True)
class Quantity:
    value: object
    unit: str | None = None


@dataclass(frozen=True)
class Interval:
    low: object
    high: object
    low_closed: bool = True
    high_closed: bool = True


@dataclass(frozen=True)
class DateTime:
    """A CQL DateTime (or Date when ``date_only``): its known components, most significant first, in UTC
    when a time zone was given."""

    parts: tuple[int, ...]
    date_only: bool = False

    @property
    def precision(self) -> str:
        return PRECISIONS[len(self.parts) - 1]

    def __str__(self) -> str:
        p = self.parts
        text = "-".join(f"{v:0{w}d}" for v, w in zip(p[:3], (4, 2, 2)))
        if len(p) > 3:
            text += "T" + ":".join(f"{v:02d}" for v in p[3:6])
            if len(p) > 6:
                text += f".{p[6]:03d}"
        return text


def parse_datetime(text, date_only: bool = False) -> DateTime | None:
    """A FHIR date/dateTime/instant string as a CQL DateTime (None if it is not one)."""
    if not isinstance(text, str):
        return None
    m = _DT.match(text)
    if not m:
        return None
    parts = [int(g) for g in m.groups()[:6] if g is not None]
    if m.group(7):
        parts.append(int((m.group(7) + "00")[:3]))
    tz = m.group(8)
    if date_only:
        return DateTime(tuple(parts[:3]), True)
    if tz and len(parts) > 3:
        full = parts + [0] * (7 - len(parts))
        offset = _dt.timedelta(0) if tz == "Z" else (1 if tz[0] == "+" else -1) * _dt.timedelta(
            hours=int(tz[1:3]), minutes=int(tz[4:6]))
        d = _dt.datetime(*full[:6], full[6] * 1000) - offset
        utc = [d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond // 1000]
        parts = utc[:len(parts)]
    return DateTime(tuple(parts))


def compare_datetime(a: DateTime, b: DateTime, precision: str | None = None) -> int | None:
    """-1, 0 or 1; None when the answer depends on components one of them does not know."""
    n = len(PRECISIONS) if precision is None else PRECISIONS.index(precision.lower()) + 1
    for i in range(n):
        if i >= len(a.parts) or i >= len(b.parts):
            if i >= len(a.parts) and i >= len(b.parts):
                return 0
            return None
        if a.parts[i] != b.parts[i]:
            return -1 if a.parts[i] < b.parts[i] else 1
    return 0


def today() -> DateTime:
    d = _dt.date.today()
    return DateTime((d.year, d.month, d.day), True)


def now() -> DateTime:
    d = _dt.datetime.now(_dt.timezone.utc)
    return DateTime((d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond // 1000))
