"""CodeSystem property checks, as the HL7 validator's CodeSystemValidator makes them.

A CodeSystem declares its concept properties (``CodeSystem.property``: code, uri, type); the
concepts then give values (``concept.property``).  The HL7 validator decides for each declared
property of type ``code`` how its values are checked, and reports:

* CODESYSTEM_PROPERTY_URI_INVALID (warning): a property ``uri`` of the form ``base#code`` whose
  base is a known code system that has neither a property with that uri nor a concept ``code``
  (from R5 on even for the FHIR-defined concept-properties);
* CODESYSTEM_PROPERTY_CODE_DEFAULT_WARNING (information): a ``code`` property with no value set
  information, whose values are therefore validated as internal codes;
* CODESYSTEM_PROPERTY_BAD_INTERNAL_REFERENCE: a ``code`` value that is not a code of this code
  system (of the supplemented one for a supplement): an error for the parent/child/partOf/synonym
  properties and in supplements, otherwise a warning; each value is reported once per code system.

Checks that need a value set expansion (properties bound to a value set) are not made here.
"""
from __future__ import annotations

from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.model import Node
from fhirpkg.validation import canonical_lookup

CONCEPT_PROPERTIES = "http://hl7.org/fhir/concept-properties"
#: the FHIR-defined properties whose code values must be codes of the same code system (an error)
INTERNAL_CODE_PROPERTIES = frozenset(f"{CONCEPT_PROPERTIES}#{p}" for p in ("parent", "child", "partOf", "synonym"))
#: the other FHIR-defined properties (no internal-code check for their values)
KNOWN_PROPERTIES = INTERNAL_CODE_PROPERTIES | frozenset(
    f"{CONCEPT_PROPERTIES}#{p}" for p in ("status", "inactive", "effectiveDate", "deprecationDate",
                                         "retirementDate", "notSelectable", "comment", "itemWeight"))
#: before R5 the HL7 validator accepts these property uris without finding them (isOfficialRef)
OFFICIAL_BEFORE_R5 = KNOWN_PROPERTIES | frozenset(
    f"{CONCEPT_PROPERTIES}#{p}" for p in ("alternateCode", "order", "definition"))
PROPERTY_VALUESET_EXTS = ("http://hl7.org/fhir/StructureDefinition/codesystem-property-valueset",
                          "http://hl7.org/fhir/6.0/StructureDefinition/extension-CodeSystem.property.valueSet")

# how the values of a code property are checked
NO_CHECK, INTERNAL, INTERNAL_WARNING = "none", "internal", "internal-warning"


def _codes(concepts, out: set) -> set:
    for c in concepts if isinstance(concepts, list) else ():
        if isinstance(c, dict):
            if isinstance(c.get("code"), str):
                out.add(c["code"])
            _codes(c.get("concept"), out)
    return out


def _concepts(concepts, location: tuple, expression: str):
    for i, c in enumerate(concepts if isinstance(concepts, list) else ()):
        if isinstance(c, dict):
            loc, expr = location + ("concept", i), f"{expression}.concept[{i}]"
            yield c, loc, expr
            yield from _concepts(c.get("concept"), loc, expr)


def _base_code_system(base: str, defs, resolver) -> tuple[str, dict | None, set] | None:
    """(name for messages, the resource if it can be read, its codes) of the code system ``base``."""
    raw = canonical_lookup.find(defs, resolver, base, "CodeSystem")
    if raw is not None and raw.get("content") != "not-present":
        return raw.get("title") or raw.get("name") or base, raw, _codes(raw.get("concept"), set())
    cs = defs.terminology.code_system(base) if defs.terminology is not None else None
    if cs is None:
        return None
    return cs.label, raw, set(cs.concepts)


def _find_concept(concepts, code: str) -> dict | None:
    for c in concepts if isinstance(concepts, list) else ():
        if isinstance(c, dict):
            if c.get("code") == code:
                return c
            found = _find_concept(c.get("concept"), code)
            if found is not None:
                return found
    return None


def _has_ext(element: dict, urls: tuple[str, ...]) -> bool:
    return any(isinstance(e, dict) and e.get("url") in urls for e in element.get("extension") or ())


def _property_rule(prop: dict, r5: bool, defs, resolver, expr: str, loc: tuple) -> Iterator[Issue | str]:
    """Issues about one property declaration, then (last) how its code values are checked."""
    uri, ptype, pcode = prop.get("uri"), prop.get("type"), prop.get("code")
    uri = uri if isinstance(uri, str) else None
    value_set = False
    if uri is not None and "#" in uri:
        base, code = uri.split("#", 1)
        found = _base_code_system(base, defs, resolver)
        if found is not None:
            label, raw, codes = found
            declared = any(isinstance(p, dict) and p.get("uri") == uri for p in (raw or {}).get("property") or ())
            if declared:
                value_set = ptype == "code" and any(_has_ext(p, PROPERTY_VALUESET_EXTS) for p in raw["property"]
                                                    if isinstance(p, dict) and p.get("uri") == uri)
            elif code in codes:
                concept = _find_concept((raw or {}).get("concept"), code) or {}
                value_set = ptype == "code" and any(
                    isinstance(p, dict) and p.get("code") == "binding" for p in concept.get("property") or ())
            elif r5 or uri not in OFFICIAL_BEFORE_R5:
                yield Issue(Severity.WARNING, "invalid", f"The uri '{uri}' for the property '{pcode}' implies a "
                            f"property with that URI exists in the CodeSystem {label} for {base}, or the code "
                            f"'{code}' does, but neither were found", "codesystem-property-uri", expr, location=loc)
    if uri in KNOWN_PROPERTIES:
        yield INTERNAL if uri in INTERNAL_CODE_PROPERTIES else NO_CHECK
    elif ptype != "code" or _has_ext(prop, PROPERTY_VALUESET_EXTS) or value_set:
        yield NO_CHECK  # checked against a value set (needs an expansion: not made here)
    else:
        yield Issue(Severity.INFORMATION, "business-rule", "The type of property 'code' is 'code', but no ValueSet "
                    "information was found, so the codes will be validated as internal codes",
                    "codesystem-property-internal", expr, location=loc)
        yield INTERNAL_WARNING


def check(node: Node, defs, resolver=None) -> Iterator[Issue]:
    """The property checks of one CodeSystem (contained ones included)."""
    cs = node.value
    if not isinstance(cs, dict) or node.location != node.frame.location:
        return
    term = defs.terminology
    r5 = not defs.fhir_version.startswith(("4.", "3.", "1."))
    rules: dict[str, str] = {}
    for i, prop in enumerate(cs.get("property") or ()):
        if not isinstance(prop, dict):
            continue
        expr, loc = f"{node.expression}.property[{i}]", node.location + ("property", i)
        for out in _property_rule(prop, r5, defs, resolver, expr, loc):
            if isinstance(out, Issue):
                yield out
            elif prop.get("type") == "code":  # a value of another type is not checked as a code
                for key in (prop.get("uri"), prop.get("code")):
                    if isinstance(key, str):
                        rules.setdefault(key, out)
    if not any(r != NO_CHECK for r in rules.values()):
        return
    supplements = cs.get("supplements") if isinstance(cs.get("supplements"), str) else None
    if supplements:
        base = term.code_system(supplements) if term is not None else None
        codes = set(base.concepts) if base is not None else set()
    else:
        codes = _codes(cs.get("concept"), set())
    seen: set[str] = set()
    for concept, cloc, cexpr in _concepts(cs.get("concept"), node.location, node.expression):
        for j, value in enumerate(concept.get("property") or ()):
            if not isinstance(value, dict) or "valueCode" not in value:
                continue
            rule, code = rules.get(value.get("code")), value["valueCode"]
            if rule in (None, NO_CHECK) or not isinstance(code, str) or code in seen:
                continue
            seen.add(code)  # the HL7 validator checks each value once per code system
            if code not in codes:
                sev = Severity.ERROR if rule == INTERNAL or supplements else Severity.WARNING
                yield Issue(sev, "invalid", f"The code '{code}' is not a valid code in this code system",
                            "codesystem-property-code", f"{cexpr}.property[{j}]", location=cloc + ("property", j))
