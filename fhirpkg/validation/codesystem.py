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

Its checks of the declarations themselves (CodeSystemValidator.checkPropertyDefinition):

* CODESYSTEM_PROPERTY_ABSOLUTE_URI, _DUPLICATE_URI, _DUPLICATE_CODE (errors): a property uri that is
  not absolute; a uri or code declared twice (uris and codes share one table, as in the HL7 validator);
* CODESYSTEM_PROPERTY_URI_CODE_MISMATCH, _URI_TYPE_MISMATCH (errors): a FHIR concept-properties uri
  with another standard property's code, or with another type than the one FHIR defines;
* CODESYSTEM_PROPERTY_BAD_HL7_URI (error): an unknown property uri in the hl7.org/fhir namespace, outside
  the base specification's own code systems;
* CODESYSTEM_PROPERTY_KNOWN_CODE_SUGGESTIVE, _CODE_TYPE_MISMATCH (warnings), _UNKNOWN_CODE (information):
  a property with a code and no uri;

and of the concepts' values (checkPropertyValue): CODESYSTEM_PROPERTY_UNDEFINED (warning), _NO_VALUE
and _WRONG_TYPE (errors).

Checks that need a value set expansion (properties bound to a value set) are not made here.
"""
from __future__ import annotations

from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.model import Node
from fhirpkg.validation import canonical_lookup
from fhirpkg.validation.references import ABSOLUTE_URI

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

#: the standard properties by code, with the type FHIR gives them (CodeSystemValidator.KnownProperty)
KNOWN_TYPES = {"status": "code", "inactive": "boolean", "effectiveDate": "dateTime", "deprecationDate": "dateTime",
               "retirementDate": "dateTime", "notSelectable": "boolean", "parent": "code", "child": "code",
               "partOf": "code", "synonym": "code", "comment": "string", "itemWeight": "decimal"}

# how the values of a code property are checked
NO_CHECK, INTERNAL, INTERNAL_WARNING = "none", "internal", "internal-warning"


def all_codes(concepts, out: set) -> set:
    """Every code of a CodeSystem's (nested) concepts, added to ``out``."""
    for c in concepts if isinstance(concepts, list) else ():
        if isinstance(c, dict):
            if isinstance(c.get("code"), str):
                out.add(c["code"])
            all_codes(c.get("concept"), out)
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
        return raw.get("title") or raw.get("name") or base, raw, all_codes(raw.get("concept"), set())
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


def _declaration(prop: dict, cs_url: str, declared: dict, expr: str, loc: tuple) -> Iterator[Issue]:
    """The rules on one property declaration itself; ``declared`` (uri or code -> type) grows."""
    uri, code, ptype = (v if isinstance(v, str) else None
                        for v in (prop.get("uri"), prop.get("code"), prop.get("type")))

    def said(severity: Severity, message: str) -> Issue:
        return Issue(severity, "business-rule", message, "codesystem-property-declaration", expr, location=loc)

    def wrong_type(severity: Severity, what: str, known: str) -> Iterator[Issue]:
        if ptype is not None and ptype != KNOWN_TYPES[known]:
            yield said(severity, f"Wrong type '{ptype}': The {what} identifies a property that has the type "
                                 f"'{KNOWN_TYPES[known]}'")

    known_by_uri = None
    if uri is not None:
        if not ABSOLUTE_URI.match(uri):
            yield said(Severity.ERROR, f"A property URI must be an absolute URI, but '{uri}' is not")
        else:
            if uri in declared:
                yield said(Severity.ERROR, f"A property is already defined with the URI '{uri}'")
            else:
                declared[uri] = ptype
            if "://hl7.org/fhir" in uri:
                if uri.startswith(CONCEPT_PROPERTIES + "#") and uri.split("#", 1)[1] in KNOWN_TYPES:
                    known_by_uri = uri.split("#", 1)[1]
                elif not (cs_url.startswith("http://hl7.org/fhir/") and "/" not in cs_url[20:]) \
                        and not (cs_url and uri.startswith(cs_url)):
                    yield said(Severity.ERROR, f"Unknown CodeSystem Property '{uri}'. If you are creating your own "
                                               "property, do not create it in the HL7 namespace")
    if code is not None:
        if code in declared:
            yield said(Severity.ERROR, f"A property is already defined with the code '{code}'")
        else:
            declared[code] = ptype
    known_by_code = code if code in KNOWN_TYPES else None
    if known_by_uri is not None:
        if known_by_code is not None and known_by_code != known_by_uri:
            yield said(Severity.ERROR, f"The URI '{uri}' is normally assigned the code '{known_by_uri}'. Using the "
                                       f"code '{code}' will usually create confusion in ValueSet filters etc")
        yield from wrong_type(Severity.ERROR, f"URI '{uri}'", known_by_uri)
    if uri is None and code is not None:
        if known_by_code is None:
            yield said(Severity.INFORMATION, f"This property has only a code ('{code}') and not a URI, so it has no "
                                             "clearly defined meaning in the terminology ecosystem")
        else:
            yield said(Severity.WARNING, f"This property has only the standard code ('{code}') but not the standard "
                                         f"URI '{CONCEPT_PROPERTIES}#{code}', so it has no clearly defined meaning in "
                                         "the terminology ecosystem")
            yield from wrong_type(Severity.WARNING, f"code '{code}'", code)


def _values(cs: dict, declared: dict, node: Node) -> Iterator[Issue]:
    """Each concept property value has a declaration, a value, and the declared type."""
    for concept, cloc, cexpr in _concepts(cs.get("concept"), node.location, node.expression):
        for j, value in enumerate(concept.get("property") or ()):
            code = value.get("code") if isinstance(value, dict) else None
            if not isinstance(code, str):
                continue
            expr, loc = f"{cexpr}.property[{j}]", cloc + ("property", j)
            if code not in declared:
                yield Issue(Severity.WARNING, "business-rule", f"The property '{code}' has no definition in "
                            "CodeSystem.property. Many terminology tools won't know what to do with it",
                            "codesystem-property-value", expr, location=loc)
            key = next((k for k in value if k.startswith("value") and not k.startswith("value_")), None)
            if key is None:
                yield Issue(Severity.ERROR, "business-rule", f"The property '{code}' has no value, and cannot be "
                            "understood", "codesystem-property-value", expr, location=loc)
                continue
            vtype = key[5:] if key == "valueCoding" else key[5:6].lower() + key[6:]
            want = declared.get(code)
            if want is not None and vtype != want:
                yield Issue(Severity.ERROR, "business-rule", f"The property '{code}' has the invalid type '{vtype}', "
                            f"when it is defined to have the type '{want}'", "codesystem-property-value", expr,
                            location=loc)


def check(node: Node, defs, resolver=None) -> Iterator[Issue]:
    """The property checks of one CodeSystem (contained ones included)."""
    cs = node.value
    if not isinstance(cs, dict) or node.location != node.frame.location:
        return
    term = defs.terminology
    r5 = not defs.fhir_version.startswith(("4.", "3.", "1."))
    rules: dict[str, str] = {}
    declared: dict[str, str | None] = {}
    cs_url = cs.get("url") if isinstance(cs.get("url"), str) else ""
    for i, prop in enumerate(cs.get("property") or ()):
        if not isinstance(prop, dict):
            continue
        expr, loc = f"{node.expression}.property[{i}]", node.location + ("property", i)
        yield from _declaration(prop, cs_url, declared, expr, loc)
        for out in _property_rule(prop, r5, defs, resolver, expr, loc):
            if isinstance(out, Issue):
                yield out
            elif prop.get("type") == "code":  # a value of another type is not checked as a code
                for key in (prop.get("uri"), prop.get("code")):
                    if isinstance(key, str):
                        rules.setdefault(key, out)
    yield from _values(cs, declared, node)
    if not any(r != NO_CHECK for r in rules.values()):
        return
    supplements = cs.get("supplements") if isinstance(cs.get("supplements"), str) else None
    if supplements:
        base = term.code_system(supplements) if term is not None else None
        codes = set(base.concepts) if base is not None else set()
    else:
        codes = all_codes(cs.get("concept"), set())
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
