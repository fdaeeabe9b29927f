"""FHIR JSON out, byte for byte the same on every machine.

Elements are written in the order their StructureDefinition gives (each value
followed by its ``_name`` shadow), numbers exactly as they were written in the
source (never through float), strings as UTF-8, two-space indentation.  Values
are never changed, only ordered, so a resource reads back equal to what was
authored.  ``dumps`` is the one JSON writer that keeps number lexemes: the build,
``diff`` reports and ``push`` request bodies all use it (``indent=None``: compact).
"""
from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING

from fhirpkg.fhir.jsonsource import lexeme

if TYPE_CHECKING:  # annotations only: writing JSON needs no definitions loaded
    from fhirpkg.fhir.definitions import Definitions
    from fhirpkg.fhir.model import ElementDef, TypeDef

_encode_string = json.JSONEncoder(ensure_ascii=False).encode


def dumps(value, indent: int | None = 2, cache: dict | None = None) -> str:
    """JSON text for a value, numbers written by their original lexeme.

    ``indent=None`` writes it compact, on one line with no spaces (``{"a":1}``).

    ``cache`` (a dict kept by the caller) remembers the text of each resource, keyed by
    ``(id(resource), depth)``, so a resource written into several outputs, at any depth, is
    serialised once (indented text at depth n is the depth-0 text with each line break
    followed by n indents: JSON strings hold no raw line breaks).  Compact text is not cached.
    """
    out: list[str] = []
    _write(value, out, 0, indent, cache)
    return "".join(out)


def dumps_utf8(value, indent: int | None = 2, cache: dict | None = None) -> bytes:
    """``dumps`` as UTF-8, each piece encoded on its own: a Bundle of thousands of resource texts is
    never joined into one str first (a str is as wide per character as its widest character)."""
    out: list[str] = []
    _write(value, out, 0, indent, cache)
    return b"".join([part.encode("utf-8") for part in out])


def _write(value, out: list[str], level: int, indent: int | None, cache: dict | None = None) -> None:
    if isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        if cache is not None and indent is not None and "resourceType" in value:
            hit = cache.get((id(value), level))
            if hit is None:
                top = cache.get((id(value), 0))
                if top is None:
                    part: list[str] = []
                    _write_object(value, part, 0, indent, cache)
                    top = cache[(id(value), 0)] = ("".join(part), value)  # the value kept alive: ids stay unique
                hit = top if not level else cache.setdefault(
                    (id(value), level), (top[0].replace("\n", "\n" + " " * (indent * level)), value))
            out.append(hit[0])
            return
        _write_object(value, out, level, indent, cache)
    elif isinstance(value, list):
        if not value:
            out.append("[]")
            return
        pad = "" if indent is None else "\n" + " " * (indent * (level + 1))
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            out.append(pad)
            _write(v, out, level + 1, indent, cache)
        out.append(("" if indent is None else "\n" + " " * (indent * level)) + "]")
    else:
        _write_scalar(value, out)


def _write_object(value: dict, out: list[str], level: int, indent: int | None, cache) -> None:
    pad = "" if indent is None else "\n" + " " * (indent * (level + 1))
    colon = ":" if indent is None else ": "
    out.append("{")
    first = True
    for k, v in value.items():
        if not first:
            out.append(",")
        first = False
        out.append(pad)
        out.append(_encode_string(str(k)))
        out.append(colon)
        _write(v, out, level + 1, indent, cache)
    out.append(("" if indent is None else "\n" + " " * (indent * level)) + "}")


def _write_scalar(value, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_encode_string(value))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    elif isinstance(value, (int, Decimal)):
        out.append(lexeme(value))
    elif isinstance(value, float):
        out.append(repr(value))
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")


class Orderer:
    """Puts a resource's properties in StructureDefinition order."""

    def __init__(self, defs: Definitions):
        self.defs = defs

    def resource(self, res: dict) -> dict:
        rt = res.get("resourceType")
        td = self.defs.base_type(rt) if isinstance(rt, str) else None
        if td is None:
            return res
        out = {"resourceType": rt}
        out.update(self._object(res, td.root, td, skip=("resourceType",)))
        return out

    def _object(self, obj: dict, edef: ElementDef, td: TypeDef, skip=()) -> dict:
        parent, ptd = edef, td
        index = parent.json_index
        placed: dict = {}
        # definition order: for each child, its value then its shadow
        order: dict[str, int] = {}
        for n, name in enumerate(parent.children):
            order[name] = n
        keyed = []
        for pos, key in enumerate(obj):
            if key in skip:
                continue
            base = key[1:] if key.startswith("_") else key
            hit = index.get(base)
            rank = order.get(hit[0].name, len(order)) if hit else len(order) + 1
            if base == "url" and "value[x]" in parent.children:
                rank = 0.5  # Extension.url is an XML attribute: written right after id, as HL7 tools do
            keyed.append((rank, base, key.startswith("_"), pos, key))
        keyed.sort(key=lambda k: (k[0], k[1] if k[0] > len(order) else "", k[2], k[3]))
        for _, base, _, _, key in keyed:
            value = obj[key]
            hit = index.get(base)
            placed[key] = self._value(value, hit, ptd) if hit and not key.startswith("_") else value
        return placed

    def _value(self, value, hit, td: TypeDef):
        child, tcode = hit
        if isinstance(value, list):
            return [self._one(v, child, tcode, td) for v in value]
        return self._one(value, child, tcode, td)

    def _one(self, value, child: ElementDef, tcode: str | None, td: TypeDef):
        if not isinstance(value, dict):
            return value
        if "resourceType" in value and (tcode in (None, "Resource") or child.name in ("resource", "contained")):
            return self.resource(value)
        parent, ptd = self.defs.children_of(child, td, tcode or (child.types[0].code if child.types else None))
        if parent is None:
            return value
        return self._object(value, parent, ptd)
