"""Quantities in comparisons: FHIR Quantity elements and FHIRPath quantities compared through UCUM
(prefixes and a small set of convertible units, enough for the invariants of the core)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from fhirpathpy.engine.nodes import FP_Quantity, ResourceNode, TypeInfo

from fhirpkg.validation.fhirpath.common import NotEvaluable, UCUM
from fhirpkg.validation.fhirpath.model import QUANTITY_TYPES, R5_TYPE_MODEL
from fhirpkg.validation.fhirpath.boundaries import decimal_text

#: The fhirpathpy release whose internals this module was written against.

# --------------------------------------------------------------------------- quantities and UCUM


@dataclass(frozen=True, slots=True)
class _Qty:
    value: Decimal | None
    system: str | None
    code: str | None


def as_quantity(item) -> _Qty | None:
    if isinstance(item, FP_Quantity):
        unit = (item.unit or "'1'").strip("'")
        code = FP_Quantity.timeUnitsToUCUM.get(unit, f"'{unit}'").strip("'")
        return _Qty(Decimal(str(item.value)), UCUM, code)
    if isinstance(item, ResourceNode) and isinstance(item.data, dict):
        path = item.path
        if path in QUANTITY_TYPES or (TypeInfo.model is not None and R5_TYPE_MODEL.is_type(path, "Quantity")):
            value = item.data.get("value")
            value = Decimal(decimal_text(value)) if decimal_text(value) is not None else None
            return _Qty(value, item.data.get("system"), item.data.get("code"))
    return None


def units_comparable(a: _Qty, b: _Qty) -> bool:
    if a.system != b.system or a.code is None or b.code is None:
        return False
    if a.code == b.code:
        return True
    if a.system != UCUM:
        return False
    da, db = ucum_dimension(a.code), ucum_dimension(b.code)
    if da is None or db is None:
        raise NotEvaluable(f"comparable(): UCUM units '{a.code}' and '{b.code}' are beyond the built-in table")
    return da[1] == db[1]


def compare_quantities(op_name: str, a: _Qty, b: _Qty):
    if a.value is None or b.value is None:
        return []
    if a.system == b.system and a.code == b.code:
        x, y = a.value, b.value
    elif a.system == UCUM and b.system == UCUM and a.code and b.code:
        da, db = ucum_dimension(a.code), ucum_dimension(b.code)
        if da is None or db is None:
            raise NotEvaluable(f"cannot compare UCUM units '{a.code}' and '{b.code}' offline")
        if da[1] != db[1]:
            return []
        x, y = a.value * da[0], b.value * db[0]
    else:
        return []
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op_name]


_UCUM_PREFIXES = {
    "Y": "1e24", "Z": "1e21", "E": "1e18", "P": "1e15", "T": "1e12", "G": "1e9", "M": "1e6", "k": "1e3",
    "h": "1e2", "da": "1e1", "d": "1e-1", "c": "1e-2", "m": "1e-3", "u": "1e-6", "n": "1e-9", "p": "1e-12",
    "f": "1e-15", "a": "1e-18",
}
# atom: (factor to base, dimension as (mass, length, time, amount, temperature, other))
_UCUM_ATOMS: dict[str, tuple[str, tuple[int, ...]]] = {
    "g": ("1", (1, 0, 0, 0, 0, 0)),
    "m": ("1", (0, 1, 0, 0, 0, 0)),
    "s": ("1", (0, 0, 1, 0, 0, 0)),
    "min": ("60", (0, 0, 1, 0, 0, 0)),
    "h": ("3600", (0, 0, 1, 0, 0, 0)),
    "d": ("86400", (0, 0, 1, 0, 0, 0)),
    "wk": ("604800", (0, 0, 1, 0, 0, 0)),
    "mo": ("2629800", (0, 0, 1, 0, 0, 0)),
    "a": ("31557600", (0, 0, 1, 0, 0, 0)),
    "mol": ("1", (0, 0, 0, 1, 0, 0)),
    "eq": ("1", (0, 0, 0, 1, 0, 0)),
    "L": ("0.001", (0, 3, 0, 0, 0, 0)),
    "l": ("0.001", (0, 3, 0, 0, 0, 0)),
    "K": ("1", (0, 0, 0, 0, 1, 0)),
    "1": ("1", (0, 0, 0, 0, 0, 0)),
    "%": ("0.01", (0, 0, 0, 0, 0, 0)),
    "[iU]": ("1", (0, 0, 0, 0, 0, 1)),
    "[IU]": ("1", (0, 0, 0, 0, 0, 1)),
    "U": ("1", (0, 0, 0, 0, 0, 1)),
    "[lb_av]": ("453.59237", (1, 0, 0, 0, 0, 0)),
    "[oz_av]": ("28.349523125", (1, 0, 0, 0, 0, 0)),
    "[in_i]": ("0.0254", (0, 1, 0, 0, 0, 0)),
    "[ft_i]": ("0.3048", (0, 1, 0, 0, 0, 0)),
}
_NO_PREFIX = frozenset({"min", "h", "d", "wk", "mo", "a", "1", "%", "[lb_av]", "[oz_av]", "[in_i]", "[ft_i]", "[iU]", "[IU]"})


def ucum_values(q1: dict, q2: dict) -> tuple[float | None, float | None]:
    """Two FHIR Quantities' values in one unit (same code, or UCUM conversion), or (None, None)
    when they cannot be compared (no formal UCUM units, or units of different dimensions)."""
    v1, v2 = q1.get("value"), q2.get("value")
    if isinstance(v1, bool) or isinstance(v2, bool) or not isinstance(v1, (int, Decimal)) \
            or not isinstance(v2, (int, Decimal)):
        return None, None
    v1, v2 = float(v1), float(v2)
    if q1.get("system") == q2.get("system") and q1.get("code") == q2.get("code") and q1.get("code"):
        return v1, v2
    if q1.get("system") != UCUM or q2.get("system") != UCUM or not q1.get("code") or not q2.get("code"):
        return None, None
    d1, d2 = ucum_dimension(q1["code"]), ucum_dimension(q2["code"])
    if d1 is None or d2 is None or d1[1] != d2[1]:
        return None, None
    return v1 * float(d1[0]), v2 * float(d2[0])


def ucum_dimension(code: str) -> tuple[Decimal, tuple[int, ...]] | None:
    """(factor, dimension) of a simple UCUM expression (``mg/dL``, ``mmol/L``, ``10*3/uL``).

    Enough for comparing quantities in invariants; anything outside the small
    built-in table returns None so the caller can say it could not tell.
    """
    text = re.sub(r"\{[^}]*\}", "", code) or "1"
    factor, dims = Decimal(1), [0] * 6
    for sign, term in _ucum_terms(text):
        parsed = _ucum_term(term)
        if parsed is None:
            return None
        f, d = parsed
        factor = factor * f if sign > 0 else factor / f
        dims = [x + sign * y for x, y in zip(dims, d)]
    return factor, tuple(dims)


def _ucum_terms(text: str):
    sign = 1
    for token in re.split(r"([./])", text):
        if token == "/":
            sign = -1
        elif token == ".":
            continue
        elif token:
            yield sign, token
            # in UCUM, '/' applies to the next term only: a/b.c = a.c/b
            sign = 1


def _ucum_term(term: str) -> tuple[Decimal, tuple[int, ...]] | None:
    match = re.fullmatch(r"(10\*|10\^)?(-?\d+)?(.*?)(-?\d+)?", term)
    if not match:
        return None
    if match.group(1):
        # 10*3 style powers of ten
        exponent = int(match.group(2) or 0)
        rest = match.group(3)
        base = Decimal(10) ** exponent
        if not rest:
            return base, (0,) * 6
        inner = _ucum_term(rest)
        return None if inner is None else (base * inner[0], inner[1])
    if match.group(2) and not match.group(3):
        return Decimal(match.group(2)), (0,) * 6
    atom_text, power = match.group(3), int(match.group(4) or 1)
    found = _ucum_atom(atom_text)
    if found is None:
        return None
    factor, dims = found
    return factor**power, tuple(x * power for x in dims)


def _ucum_atom(text: str):
    if text in _UCUM_ATOMS:
        f, d = _UCUM_ATOMS[text]
        return Decimal(f), d
    for prefix in sorted(_UCUM_PREFIXES, key=len, reverse=True):
        atom = text[len(prefix):]
        if text.startswith(prefix) and atom in _UCUM_ATOMS and atom not in _NO_PREFIX:
            f, d = _UCUM_ATOMS[atom]
            return Decimal(_UCUM_PREFIXES[prefix]) * Decimal(f), d
    return None
