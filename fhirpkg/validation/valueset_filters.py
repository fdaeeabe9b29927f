"""ValueSet ``compose.include/exclude.filter`` against the code system's properties, as the HL7
validator checks them (ValueSetValidator.validateValueSetIncludeFilter with CodeSystemBasedChecker).

Only for a code system whose CodeSystem resource is loaded (a package, an --ig input, the run's own
resources); SNOMED CT, LOINC, RxNorm, UCUM, CPT and BCP-47 have grammars of their own in the HL7
validator and are not checked here.  Reported:

* VALUESET_UNKNOWN_FILTER_PROPERTY (warning): a property the code system neither declares nor shares
  with every code system (concept, code, status, inactive, ..., and parent/child/partOf when it states
  a hierarchyMeaning);
* VALUESET_BAD_FILTER_OP (error): an operation the property does not allow (the fixed sets for
  ``concept`` and ``code``; the operators the code system's own ``filter`` declarations give);
* the value against the property's type: VALUESET_BAD_FILTER_VALUE_BOOLEAN, _CODE, _DATETIME, _DECIMAL,
  _INTEGER, _CODED (system|version#code), _CODED_LEGACY (warning), _CODED_INVALID (a coding whose loaded,
  complete code system lacks the code) (errors unless said), and
  VALUESET_BAD_FILTER_VALUE_VALID_CODE for a code that the (complete) code system lacks: an error for
  concept/code/parent/child/partOf, a warning for a property the code system declares as ``code``;
* a value given as an expression on a ValueSet parameter (the tools' valueset-parameter extension, the
  value in a cqf-expression; any code system): VALUESET_BAD_FILTER_EXPR_LANG, _EXPR_VALUE (FHIRPath that
  does not parse), _EXPR_PARAM_NAME (a %constant no parameter declares).
"""
from __future__ import annotations

import re
from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.model import Node
from fhirpkg.validation import canonical_lookup
from fhirpkg.validation.codesystem import KNOWN_TYPES, all_codes
from fhirpkg.validation.references import ABSOLUTE_URI

#: systems with their own checker in the HL7 validator (not a CodeSystem resource's properties)
OWN_GRAMMAR = frozenset({"http://snomed.info/sct", "http://loinc.org", "http://www.nlm.nih.gov/research/umls/rxnorm",
                         "http://unitsofmeasure.org", "http://www.ama-assn.org/go/cpt", "urn:ietf:bcp:47"})
#: properties every code system has (CodeSystemChecker.listPropertyNames, in its order): the standard
#: concept properties but the hierarchy ones, which a code system has when it states a hierarchyMeaning
COMMON = ("concept", "code") + tuple(p for p in KNOWN_TYPES if p not in ("parent", "child", "partOf"))
_CONCEPT_OPS_R4 = ("=", "in", "is-a", "descendent-of", "is-not-a", "generalizes", "not-in")
_CONCEPT_OPS_R5 = _CONCEPT_OPS_R4 + ("descendent-leaf", "child-of")
#: (value type, code check) of the standard properties; "error"/"warning" = the value must be a code of the
#: system (the hierarchy ones); a string property (comment) has no rule
_COMMON_RULES = {p: (t, "error" if p in ("parent", "child", "partOf") else None)
                 for p, t in KNOWN_TYPES.items() if t != "string"}
_DECLARED_RULES = {"boolean": ("boolean", None), "code": ("code", "warning"), "Coding": ("Coding", None),
                   "dateTime": ("dateTime", None), "decimal": ("decimal", None), "integer": ("integer", None)}
_COMPARATOR = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_DATETIME = re.compile(r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|"
                       r"3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):"
                       r"[0-5][0-9]|14:00))?)?)?)?")
_DECIMAL = re.compile(r"[+-]?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_LEGACY_CODING = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:[^\s|]+\|\S+")
VALUESET_PARAMETER = "http://hl7.org/fhir/tools/StructureDefinition/valueset-parameter"
CQF_EXPRESSION = "http://hl7.org/fhir/StructureDefinition/cqf-expression"
#: %name constants in FHIRPath, as the HL7 lexer reads them (letters, digits, '_' and '-')
_CONSTANT = re.compile(r"%([A-Za-z0-9_\-]+)")


def _rules(prop: str, cs: dict, r5: bool) -> tuple[tuple[str, str | None] | None, tuple[str, ...]]:
    """((value type, code check) or None, allowed operations or ()) for a filter on ``prop``."""
    ops: list[str] = []
    for f in cs.get("filter") or ():
        if isinstance(f, dict) and f.get("code") == prop:
            ops.extend(o for o in f.get("operator") or () if isinstance(o, str))
    for p in cs.get("property") or ():
        if isinstance(p, dict) and p.get("code") == prop and isinstance(p.get("type"), str):
            return _DECLARED_RULES.get(p["type"]), tuple(ops)
    if prop in ("concept", "code"):
        fixed = _CONCEPT_OPS_R5 if r5 else _CONCEPT_OPS_R4
        return ("code", "error"), tuple(ops) + fixed + (("regex",) if prop == "code" else ())
    return _COMMON_RULES.get(prop), tuple(ops)


def _parameters(vs: dict) -> set[str]:
    """The names the ValueSet declares with the tools' valueset-parameter extension."""
    names = set()
    for ext in vs.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == VALUESET_PARAMETER:
            for sub in ext.get("extension") or ():
                if isinstance(sub, dict) and sub.get("url") == "name":
                    names.update(v for k, v in sub.items() if k.startswith("value") and isinstance(v, str))
    return names


def _value_expression(f: dict, params: set[str], expr: str, loc: tuple) -> Iterator[Issue]:
    """A filter value given as a cqf-expression on ``_value`` (a ValueSet parameter): FHIRPath that
    parses and names only declared parameters (VALUESET_BAD_FILTER_EXPR_LANG, _EXPR_VALUE, _EXPR_PARAM_NAME)."""
    shadow = f.get("_value")
    found = next((x.get("valueExpression") for x in (shadow.get("extension") or () if isinstance(shadow, dict) else ())
                  if isinstance(x, dict) and x.get("url") == CQF_EXPRESSION), None)
    if not isinstance(found, dict):
        return
    eexpr, eloc = expr + ".value.extension", loc + ("_value", "extension")
    lang, text = found.get("language"), found.get("expression")
    if lang != "text/fhirpath":
        yield Issue(Severity.ERROR, "invalid", f"A ValueSet expression language must be 'text/fhirpath' not '{lang}'",
                    "valueset-filter", eexpr, location=eloc)
        return
    if not isinstance(text, str):
        return
    from fhirpkg.validation.fhirpath.parsing import parse  # imports ANTLR: only when needed
    try:
        parse(text)
    except Exception as e:  # noqa: BLE001 - a syntax error, or the ANTLR lexer's own exception types
        yield Issue(Severity.ERROR, "invalid", f"The value of the expression '{text}' is not a valid FHIRPath: {e}",
                    "valueset-filter", eexpr, location=eloc)
        return
    for name in dict.fromkeys(_CONSTANT.findall(re.sub(r"'(?:[^'\\]|\\.)*'", "''", text))):  # not in strings
        if name not in params:
            yield Issue(Severity.ERROR, "invalid", f"The filter parameter expression '{text}' refers to the unknown "
                        f"parameter '{name}'", "valueset-filter", eexpr, location=eloc)


class _Systems:
    """The code systems filter values name, found and their codes gathered once per ValueSet."""

    def __init__(self, defs, resolver):
        self.defs, self.resolver = defs, resolver
        self._codes: dict[int, set] = {}

    def find(self, url: str) -> dict | None:
        return canonical_lookup.find(self.defs, self.resolver, url, "CodeSystem")

    def codes(self, cs: dict) -> set:
        found = self._codes.get(id(cs))
        if found is None:
            found = self._codes[id(cs)] = all_codes(cs.get("concept"), set())
        return found


def check(node: Node, defs, resolver=None) -> Iterator[Issue]:
    """The filters of one ValueSet's compose."""
    vs = node.value
    compose = vs.get("compose") if isinstance(vs, dict) else None
    if not isinstance(compose, dict):
        return
    r5 = not defs.fhir_version.startswith(("4.", "3.", "1."))
    params = _parameters(vs)
    systems = _Systems(defs, resolver)
    for part in ("include", "exclude"):
        for i, inc in enumerate(compose.get(part) or ()):
            system = inc.get("system") if isinstance(inc, dict) else None
            if not isinstance(system, str) or not isinstance(inc.get("filter"), list):
                continue
            for j, f in enumerate(inc["filter"]):
                # a filter on a property every code system has may take its value from a parameter
                if isinstance(f, dict) and "value" not in f and f.get("property") in _COMMON_RULES:
                    yield from _value_expression(f, params, f"{node.expression}.compose.{part}[{i}].filter[{j}]",
                                                 node.location + ("compose", part, i, "filter", j))
            if system in OWN_GRAMMAR:
                continue
            version = inc.get("version") if isinstance(inc.get("version"), str) else None
            cs = canonical_lookup.find(defs, resolver, f"{system}|{version}" if version else system, "CodeSystem")
            if cs is None and version:
                cs = canonical_lookup.find(defs, resolver, system, "CodeSystem")
            if cs is None:
                continue
            for j, f in enumerate(inc["filter"] if isinstance(inc["filter"], list) else ()):
                if isinstance(f, dict):
                    yield from _filter(f, system, cs, r5, f"{node.expression}.compose.{part}[{i}].filter[{j}]",
                                       node.location + ("compose", part, i, "filter", j), systems)


def _filter(f: dict, system: str, cs: dict, r5: bool, expr: str, loc: tuple, systems: _Systems) -> Iterator[Issue]:
    prop, op, value = f.get("property"), f.get("op"), f.get("value")
    if not isinstance(prop, str):
        return
    known = list(COMMON)
    if cs.get("hierarchyMeaning"):
        known += ["parent", "child", "partOf"]
    for d in list(cs.get("filter") or ()) + list(cs.get("property") or ()):
        code = d.get("code") if isinstance(d, dict) else None
        if isinstance(code, str) and code not in known:
            known.append(code)
    if prop not in known:
        yield Issue(Severity.WARNING, "invalid", f"The property '{prop}' is not known for the system '{system}', so "
                    "may not be understood by the terminology ecosystem. Known properties for this system: "
                    f"{','.join(known)}", "valueset-filter", expr, location=loc)
        return
    rules, ops = _rules(prop, cs, r5)
    if rules is None:
        return
    if ops and isinstance(op, str) and op not in ops:
        yield Issue(Severity.ERROR, "invalid", f"The operation '{op}' is not allowed for property '{prop}' in system "
                    f"'{system}'. Allowed ops: {','.join(_op_order(ops))}", "valueset-filter", expr, location=loc)
    if not isinstance(value, str) or op == "regex":
        return
    if op == "exists":
        rules = ("boolean", None)
    values = value.split(",") if op in ("in", "not-in") else [value]
    for v in values:
        yield from _value(prop, v, rules, system, cs, expr, loc, systems)


def _op_order(ops: tuple[str, ...]) -> list[str]:
    """The operations in the order the HL7 validator lists them (its PropertyOperation enum)."""
    order = ("=", "is-a", "descendent-of", "is-not-a", "regex", "in", "not-in", "generalizes", "child-of",
             "descendent-leaf", "exists")
    return [o for o in order if o in ops]


def _value(prop: str, value: str, rules: tuple[str, str | None], system: str, cs: dict, expr: str,
           loc: tuple, systems: _Systems) -> Iterator[Issue]:
    vtype, code_check = rules

    def bad(what: str) -> Issue:
        return Issue(Severity.ERROR, "invalid", f"The value for a filter based on property '{prop}' must be {what}, "
                     f"not '{value}'", "valueset-filter", expr, location=loc)

    bare = value[2:] if value.startswith(_COMPARATOR) else value
    if vtype == "boolean" and value not in ("true", "false"):
        yield bad("either 'true' or 'false'")
    elif vtype == "dateTime" and not _DATETIME.fullmatch(bare):
        yield bad("a valid date(/time)")
    elif vtype == "decimal" and not _DECIMAL.fullmatch(bare):
        yield bad("a decimal value")
    elif vtype == "integer" and not _INTEGER.fullmatch(bare):
        yield bad("integer value")
    elif vtype == "code":
        if value.strip() != value:
            yield bad("a valid code")
        elif code_check and cs.get("content") == "complete" and value not in systems.codes(cs):
            version = f" version '{cs['version']}'" if isinstance(cs.get("version"), str) else ""
            yield Issue(Severity.ERROR if code_check == "error" else Severity.WARNING, "invalid",
                        f"The value for a filter based on property '{prop}' must be a valid code from the system "
                        f"'{system}', and '{value}' is not (Unknown code '{value}' in the CodeSystem '{system}'"
                        f"{version})", "valueset-filter", expr, location=loc)
    elif vtype == "Coding":
        if _LEGACY_CODING.fullmatch(value):
            yield Issue(Severity.WARNING, "invalid", f"The value for a filter based on property '{prop}' should be in "
                        f"the format system(|version)#code, not the coding search pattern '{value}'",
                        "valueset-filter", expr, location=loc)
        elif "#" not in value and not ABSOLUTE_URI.match(value.split("|", 1)[0]):
            yield bad("in the format system(|version)#code")
        else:  # Coding.fromLiteral: system(|version)#code('display')
            sv, _, code = value.partition("#")
            code = code.split("'", 1)[0]
            target = systems.find(sv) if code else None
            if target is None and "|" in sv and code:
                target = systems.find(sv.split("|", 1)[0])
            if target is not None and target.get("content") == "complete" \
                    and code not in systems.codes(target):
                version = f" version '{target['version']}'" if isinstance(target.get("version"), str) else ""
                yield Issue(Severity.ERROR, "invalid", f"The value for a filter based on property '{prop}' is '{value}' "
                            f"which is not a valid code (Unknown code '{code}' in the CodeSystem "
                            f"'{sv.split('|', 1)[0]}'{version})", "valueset-filter", expr, location=loc)
