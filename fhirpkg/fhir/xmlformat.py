"""FHIR XML read into FHIR JSON, for loading definitions published as XML.

``fhirpkg validate --ig FILE.xml`` (or ``--ig`` a folder holding .xml files) reads
them through ``api.read_conformance_inputs``.  fhirpkg validates JSON; profiles,
extensions and value sets are still often shared as XML.  The conversion follows the FHIR XML rules (``value``
attributes for primitives, ``id``/``url`` attributes, XHTML ``div``) and uses the
StructureDefinitions to know which elements repeat and what type each has, so
the JSON is exactly what the JSON format would say.  DTDs are refused.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from fhirpkg.fhir.definitions import Definitions
from fhirpkg.fhir.jsonsource import FhirDecimal
from fhirpkg.fhir.model import ElementDef, TypeDef

FHIR_NS = "{http://hl7.org/fhir}"
XHTML_NS = "{http://www.w3.org/1999/xhtml}"
INT_TYPES = frozenset({"integer", "positiveInt", "unsignedInt"})


class XmlError(Exception):
    """The XML is not a FHIR resource this reader can convert."""


def _local(tag: str) -> str:
    return tag.split("}", 1)[1] if tag.startswith("{") else tag


def read(text: str | bytes, defs: Definitions) -> dict:
    """One FHIR resource in XML as its JSON form (elements R5 does not define are left out)."""
    root = _parse(text)
    if not root.tag.startswith(FHIR_NS):
        raise XmlError(f"not a FHIR resource: the root element <{_local(root.tag)}> is not in the FHIR namespace")
    return _Reader(defs).resource(root)


def read_file(path: Path, defs: Definitions) -> dict | None:
    """The resource in a FHIR XML file; None for XML of another kind (its root element is not in
    the FHIR namespace, such as a pom.xml beside the profiles).  XmlError says why a file fails."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise XmlError(f"cannot read: {e.strerror or e}") from None
    root = _parse(data)
    return _Reader(defs).resource(root) if root.tag.startswith(FHIR_NS) else None


def _parse(text: str | bytes):
    marks = (b"<!DOCTYPE", b"<!ENTITY") if isinstance(text, bytes) else ("<!DOCTYPE", "<!ENTITY")
    if any(m in text for m in marks):
        raise XmlError("DOCTYPE declarations are not allowed in FHIR XML")
    try:
        return ET.fromstring(text)
    except ET.ParseError as e:
        raise XmlError(f"not well-formed XML: {e}") from None


class _Reader:
    def __init__(self, defs: Definitions):
        self.defs = defs
        self.dropped: list[str] = []  # elements with no R5 definition, left out

    def resource(self, el) -> dict:
        rt = _local(el.tag)
        td = self.defs.base_type(rt)
        if td is None:
            raise XmlError(f"unknown resource type {rt}")
        out = {"resourceType": rt}
        out.update(self._object(el, td.root, td))
        return out

    def _object(self, el, edef: ElementDef, td: TypeDef) -> dict:
        out: dict = {}
        for attr in ("id", "url"):
            if attr in el.attrib:
                out[attr] = el.attrib[attr]
        for child in el:
            name = _local(child.tag)
            if child.tag.startswith(XHTML_NS) and name == "div":
                ET.register_namespace("", XHTML_NS[1:-1])
                out["div"] = ET.tostring(child, encoding="unicode", short_empty_elements=True)
                continue
            hit = edef.json_index.get(name)
            if hit is None:
                # an element of another FHIR version (e.g. R4's ElementDefinition.constraint.xpath)
                self.dropped.append(f"{edef.path}.{name}")
                continue
            cdef, tcode = hit
            if tcode is None and cdef.content_reference:
                tcode = "BackboneElement"
            value, shadow = self._value(child, cdef, tcode, td)
            if cdef.is_array:
                values = out.setdefault(name, []) if value is not None or shadow is not None else None
                if values is not None:
                    values.append(value)
                    if shadow is not None or f"_{name}" in out:
                        shadows = out.setdefault(f"_{name}", [None] * (len(values) - 1))
                        shadows.append(shadow)
                    elif f"_{name}" in out:
                        out[f"_{name}"].append(None)
            else:
                if value is not None:
                    out[name] = value
                if shadow is not None:
                    out[f"_{name}"] = shadow
        return out

    def _value(self, el, cdef: ElementDef, tcode: str | None, td: TypeDef):
        if tcode in ("Resource", "DomainResource") or (tcode and self._kind(tcode) == "resource"):
            inner = list(el)
            return (self.resource(inner[0]) if inner else None), None
        if tcode and (self._kind(tcode) == "primitive-type" or tcode.startswith("http://hl7.org/fhirpath/")):
            raw = el.attrib.get("value")
            value = None if raw is None else self._primitive(raw, tcode)
            shadow = {}
            if "id" in el.attrib:
                shadow["id"] = el.attrib["id"]
            exts = [self._object(x, self._ext_root(), self.defs.base_type("Extension"))
                    for x in el if _local(x.tag) == "extension"]
            if exts:
                shadow["extension"] = exts
            return value, (shadow or None)
        parent, ptd = self.defs.children_of(cdef, td, tcode)
        if parent is None:
            raise XmlError(f"no definition for the children of {cdef.path}")
        return self._object(el, parent, ptd), None

    def _ext_root(self) -> ElementDef:
        return self.defs.base_type("Extension").root

    def _kind(self, code: str) -> str:
        t = self.defs.base_type(code)
        return t.kind if t is not None else ""

    @staticmethod
    def _primitive(raw: str, tcode: str):
        if tcode == "boolean":
            return raw == "true"
        if tcode in INT_TYPES:
            try:
                return int(raw)
            except ValueError:
                return raw
        if tcode == "decimal":
            try:
                return FhirDecimal(raw)
            except ArithmeticError:
                return raw
        return raw
