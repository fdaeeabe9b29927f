"""JSON values as the structure checks compare, navigate and show them.

Pure functions on parsed JSON (dicts, lists, str, bool, int, Decimal): FHIR's fixed and pattern
equality, discriminator paths, the HL7 validator's decimal bounds and whitespace, calendar dates,
and short renderings of values for messages.  No definitions, no issues.
"""
from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal

_DATE_PARTS = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def json_kind(value) -> str:
    if isinstance(value, dict):
        return "an Object"
    if isinstance(value, list):
        return "an Array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, Decimal)):
        return "a number"
    if value is None:
        return "null"
    return "a string"


#: the whitespace the HL7 validator trims (Utilities.isWhitespace): ASCII 09-0D and space, and Unicode spaces
WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
      "\u2028\u2029\u202f\u205f\u3000"


_DECIMAL_PARTS = re.compile(r"[+-]?(\d*)(?:\.(\d*))?(?:[eE][+-]?(\d*))?")


def decimal_out_of_range(text: str) -> bool:
    """The HL7 validator's bounds on a decimal (Utilities.checkDecimal): at most 18 digits before and after
    the point together, and an exponent of at most 4 digits."""
    m = _DECIMAL_PARTS.fullmatch(text)
    if m is None:
        return False
    whole, frac, exp = m.group(1), m.group(2) or "", m.group(3) or ""
    return len(exp) > 4 or len(whole) + len(frac) > 18


def escaped(value: str) -> str:
    """A value as the HL7 validator shows it in whitespace messages (JSON-escaped)."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def clip(text: str, n: int = 80) -> str:
    """Echo at most ``n`` characters of a value: a 100,000-digit number is not a message."""
    return text if len(text) <= n else f"{text[:n]}... ({len(text):,} characters)"


def brief(value) -> str:
    if isinstance(value, str):
        return value
    try:
        return clip(json.dumps(value, default=str, separators=(",", ":")), 120)
    except (TypeError, ValueError):
        return clip(str(value), 120)


def json_equal(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        keys_a = {k for k in a if k != "id" and not k.startswith("_")}
        keys_b = {k for k in b if k != "id" and not k.startswith("_")}
        return keys_a == keys_b and all(json_equal(a[k], b[k]) for k in keys_a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, Decimal)) and isinstance(b, (int, Decimal, float)):
        return Decimal(str(a)) == Decimal(str(b))
    return a == b


def json_contains(value, pattern) -> bool:
    """FHIR pattern matching: every property in the pattern appears in the value."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(k in value and json_contains(value[k], v) for k, v in pattern.items())
    if isinstance(pattern, list):
        if not isinstance(value, list):
            return False
        return all(any(json_contains(item, p) for item in value) for p in pattern)
    return json_equal(value, pattern)


def split_path(path: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in path:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "." and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return parts


def navigate(value, path: str) -> list:
    """Follow a discriminator path (the FHIRPath subset slicing uses) through JSON."""
    if path in ("$this", ""):
        return [value] if value is not None else []
    current = [value]
    for part in split_path(path):
        nxt = []
        m = re.fullmatch(r"extension\(['\"](.+)['\"]\)", part)
        for v in current:
            if not isinstance(v, dict):
                continue
            if m:
                nxt.extend(e for e in v.get("extension", ()) if isinstance(e, dict) and e.get("url") == m.group(1))
            elif part == "resolve()":
                nxt.append(v)  # resolution is not possible here; the reference itself stands in
            elif part.startswith("ofType("):
                nxt.append(v)
            elif part in v:
                x = v[part]
                nxt.extend(x if isinstance(x, list) else [x])
            elif part == "value" or part.endswith("[x]"):
                prefix = part[:-3] if part.endswith("[x]") else part
                for k, x in v.items():
                    if k.startswith(prefix) and len(k) > len(prefix) and k[len(prefix)].isupper():
                        nxt.extend(x if isinstance(x, list) else [x])
        current = nxt
    return [c for c in current if c is not None]


def valid_calendar(text: str) -> bool:
    m = _DATE_PARTS.match(text)
    if not m:
        return True
    y, mo, d = m.group(1), m.group(2), m.group(3)
    if mo and not 1 <= int(mo) <= 12:
        return False
    if d:
        try:
            date(int(y), int(mo), int(d))
        except ValueError:
            return False
    return True


def quantity_text(q: dict) -> str:
    return f"{q.get('value')} {q.get('code') or q.get('unit') or ''}".strip()


#: UCUM time units -> days, for Duration bounds on dates (a = Julian year, mo = Julian month).
_DAYS = {"a": 365.25, "mo": 30.4375, "wk": 7.0, "d": 1.0, "h": 1 / 24, "min": 1 / 1440, "s": 1 / 86400}


def date_edge(duration: dict, sign: int) -> str | None:
    """Today (UTC) moved by a Duration, as an ISO date-time, or None for a bound that is not a time."""
    import datetime as dt
    unit, value = duration.get("code") or duration.get("unit"), duration.get("value")
    if unit not in _DAYS or isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    try:
        when = dt.datetime.now(dt.timezone.utc) + sign * dt.timedelta(days=float(value) * _DAYS[unit])
    except OverflowError:
        return None
    return when.strftime("%Y-%m-%dT%H:%M:%S")
