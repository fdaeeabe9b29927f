"""Terminology layer: bindings and codes of the typed instance tree, reported as Issues.

The structure walker hands every typed element (``Node``) to the layers; this one
looks at elements with a binding (code, Coding, CodeableConcept,
CodeableReference, Quantity units, string, uri) and at every Coding and
Quantity code.  Severities and wording follow the HL7 validator run with
``-tx n/a`` (InstanceValidator, ValueSetValidator, Messages.properties):

* required binding, code not in an enumerable value set: error;
* extensible: warning; preferred: information, and only for a binding a
  profile sets (``report_preferred``), as the HL7 validator skips base-spec
  preferred bindings; example: nothing;
* value set not enumerable offline (SNOMED CT filters, ...): information, never
  an error; value set not found: warning;
* unknown code in a known complete code system: error, with or without a
  binding; wrong display: error (the HL7 validator's default); inactive code:
  warning;
* a code system not in the packages: warning inside a CodeableConcept,
  information on a lone Coding; SNOMED CT, LOINC, RxNorm, UCUM, ICD-9-CM on a
  lone Coding: warning "running without terminology services", as HL7 does.

Grammar-based systems (BCP-47, BCP-13, UCUM, ISO 4217/3166, IANA time zones,
RGB colours) are checked here although the HL7 validator leaves them to a
server: a malformed language tag is an error either way.
"""
from __future__ import annotations

from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.model import Node
from fhirpkg.validation.terminology.codes import Terminology
from fhirpkg.validation.terminology.compiled import CodeResult, ValueSetDef
from fhirpkg.validation.terminology.systems import NO_TX_EXEMPT, SERVER_SIDE

QUANTITY_TYPES = frozenset({"Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity",
                            "MoneyQuantity"})
#: Primitive types the HL7 validator checks bindings on (checkPrimitiveBinding).
PRIMITIVE_TYPES = frozenset({"code", "string", "uri", "url", "canonical"})
CODED_TYPES = frozenset({"Coding", "CodeableConcept", "CodeableReference"}) | QUANTITY_TYPES | PRIMITIVE_TYPES
DEFINED_TYPES_VS = "http://hl7.org/fhir/ValueSet/defined-types"
#: Node types this layer checks even without a binding (the walker should pass them all to check_node).
NODE_TYPES = frozenset({"Coding"}) | QUANTITY_TYPES

# How each binding strength words a code that is not in the value set (the HL7 validator's
# Terminology_TX_NoValid_* messages), for a primitive value, a Coding and a CodeableConcept.
_NOT_IN_VS = {
    "required": (
        Severity.ERROR, "binding-required",
        "The value provided ('{value}') was not found in the value set {vs}, and a code is required from this "
        "value set {detail}",
        "The Coding provided ({value}) was not found in the value set {vs}, and a code is required from this "
        "value set. {detail}",
        "None of the codings provided are in the value set {vs}, and a coding from this value set is required) "
        "(codes = {value})"),
    "extensible": (
        Severity.WARNING, "binding-extensible",
        "The value provided ('{value}') was not found in the value set {vs}, and a code should come from this "
        "value set unless it has no suitable code (note that the validator cannot judge what is suitable) {detail}",
        "The Coding provided ({value}) was not found in the value set {vs}, and a code should come from this value "
        "set unless it has no suitable code (note that the validator cannot judge what is suitable). {detail}",
        "None of the codings provided are in the value set {vs}, and a coding should come from this value set "
        "unless it has no suitable code (note that the validator cannot judge what is suitable) (codes = {value})"),
    "preferred": (
        Severity.INFORMATION, "binding-preferred",
        "The value provided ('{value}') was not found in the value set {vs}, and a code is recommended to come "
        "from this value set{detail}",
        "The Coding provided ({value}) was not found in the value set {vs}, and a code is recommended to come from "
        "this value set. {detail}",
        "None of the codings provided are in the value set {vs}, and a coding is recommended to come from this "
        "value set (codes = {value})"),
}


def _as_list(value) -> list:
    """A JSON array as a list; anything else (wrong JSON type, reported by the structure layer) as empty."""
    return value if isinstance(value, list) else []


def _issue(severity: Severity, code: str, message: str, rule: str, node: Node, suffix: str = "") -> Issue:
    expr = node.expression + (f".{suffix}" if suffix else "")
    loc = node.location + ((suffix,) if suffix else ())
    return Issue(severity, code, message.rstrip(), rule, expr, location=loc)


def _detail(res: CodeResult) -> str:
    return f" (error message = {res.message})" if res.message else ""


def check_node(term: Terminology, node: Node, *, profile: str | None = None,
               report_preferred: bool = False) -> Iterator[Issue]:
    """Everything this layer says about one node: its binding, and its own code if it is a
    Coding or a Quantity.  A datatype's root definition (the walker's second node for a
    value, carrying the datatype's invariants) is skipped: the element node covers it."""
    d = node.definition
    if d.path == node.type and d.binding is None:
        return
    if d.binding is not None and node.type in CODED_TYPES:
        yield from check_binding(term, node, profile=profile, report_preferred=report_preferred)
        if d.binding.additional:
            yield from check_additional_bindings(term, node)
    if node.type == "Coding" or node.type in QUANTITY_TYPES:
        yield from check_coding_systems(term, node)


# --- bindings --------------------------------------------------------------------------

def check_binding(term: Terminology, node: Node, *, profile: str | None = None,
                  report_preferred: bool = False) -> Iterator[Issue]:
    """Check the node's value against ``node.definition.binding``.

    ``profile``: the StructureDefinition the binding comes from, for the "has no
    source" message; ``report_preferred``: the binding is set by a profile (not
    inherited from the base specification), so a preferred binding is reported.
    """
    binding = node.definition.binding
    value = node.value
    if binding is None or value is None or binding.strength not in ("required", "extensible", "preferred"):
        return
    if binding.strength == "preferred" and not report_preferred:
        return
    t = node.type
    if not binding.value_set:
        if t != "code":
            where = f" in profile {profile}" if profile else ""
            yield _issue(Severity.INFORMATION, "code-invalid",
                         f"Binding for path {node.expression}{where} has no source, so can't be checked",
                         "binding-no-source", node)
        return
    vs_url = binding.value_set
    vs = term.value_set(vs_url)
    if vs is None:
        if term.code_system(vs_url) is not None:
            yield _issue(Severity.ERROR, "code-invalid",
                         f"Found a reference to a CodeSystem '{vs_url}' where a ValueSet belongs",
                         "binding-valueset-is-codesystem", node)
        else:
            yield _issue(Severity.WARNING, "code-invalid", f"ValueSet '{vs_url}' not found",
                         "binding-valueset-unknown", node)
        return
    if t in PRIMITIVE_TYPES:
        if isinstance(value, str):
            yield from _primitive(term, node, vs_url, vs, binding.strength, value)
    elif t == "Coding" or t in QUANTITY_TYPES:
        if isinstance(value, dict):
            yield from _coding(term, node, vs_url, vs, binding.strength, value)
    elif t == "CodeableConcept":
        if isinstance(value, dict):
            yield from _codeable_concept(term, node, vs_url, vs, binding.strength, value)
    elif t == "CodeableReference":
        concept = value.get("concept") if isinstance(value, dict) else None
        if isinstance(concept, dict):
            sub = Node(concept, None, "CodeableConcept", node.definition, node.expression + ".concept",
                       node.location + ("concept",), node.frame)
            yield from _codeable_concept(term, sub, vs_url, vs, binding.strength, concept)


#: How each additional-binding purpose is enforced (the others are documentation only).
ADDITIONAL_STRENGTH = {"required": "required", "maximum": "required", "extensible": "extensible",
                       "current": "extensible"}


def check_additional_bindings(term: Terminology, node: Node) -> Iterator[Issue]:
    """R5 additional bindings whose usage contexts apply to this resource."""
    import dataclasses
    for add in node.definition.binding.additional:
        strength = ADDITIONAL_STRENGTH.get(add.purpose)
        if strength is None or not _usage_applies(add.usage, node):
            continue
        binding = dataclasses.replace(node.definition.binding, strength=strength, value_set=add.value_set,
                                      additional=())
        sub = Node(node.value, node.shadow, node.type, dataclasses.replace(node.definition, binding=binding),
                   node.expression, node.location, node.frame)
        yield from check_binding(term, sub)


def _usage_applies(usage: tuple, node: Node) -> bool:
    """Each usage context names a path in the resource and a value it must hold."""
    for _system, path, value in usage:
        if not isinstance(path, str) or "." not in path:
            continue
        found = _values_at(node.frame.json, path.split(".")[1:])
        want = value.get("coding") if isinstance(value, dict) else None
        if want is None:
            if value not in found:
                return False
            continue
        have = {(c.get("system"), c.get("code")) for v in found if isinstance(v, dict)
                for c in _as_list(v.get("coding")) if isinstance(c, dict)}
        if not any((c.get("system"), c.get("code")) in have for c in want if isinstance(c, dict)):
            return False
    return True


def _values_at(obj, parts: list[str]) -> list:
    current = [obj]
    for part in parts:
        nxt = []
        for v in current:
            if isinstance(v, dict) and part in v:
                x = v[part]
                nxt.extend(x if isinstance(x, list) else [x])
        current = nxt
    return current


def _not_checked(node: Node, vs_url: str, strength: str, res: CodeResult) -> Iterator[Issue]:
    """TERMINOLOGY_TX_NOSVC_BOUND_REQ / _EXT: information, with our reason; nothing for preferred."""
    if strength == "preferred":
        return
    why = f" ({res.message})" if res.message else ""
    yield _issue(Severity.INFORMATION, "not-supported",
                 f"Could not confirm that the codes provided are from the {strength} value set {vs_url} because "
                 f"there is no terminology service{why}",
                 "terminology-not-checked", node)


def _primitive(term: Terminology, node: Node, vs_url: str, vs: ValueSetDef, strength: str,
               value: str) -> Iterator[Issue]:
    if vs.url == DEFINED_TYPES_VS and value.startswith("http://hl7.org/fhirpath/System."):
        return  # the HL7 validator accepts FHIRPath system types here (isOkExtension)
    res = term.validate_code(vs_url, None, value)
    if res.status == "not-checked":
        yield from _not_checked(node, vs_url, strength, res)
        return
    if res.invalid:
        sev, rule, text, _, _ = _NOT_IN_VS[strength]
        yield _issue(sev, "code-invalid", text.format(value=value, vs=vs.describe(), detail=_detail(res)), rule, node)
        return
    for kind, msg in res.findings:
        if kind in ("inactive", "deprecated"):
            yield _issue(Severity.WARNING, "business-rule", msg, "code-inactive", node)


def _coding(term: Terminology, node: Node, vs_url: str, vs: ValueSetDef, strength: str,
            coding: dict) -> Iterator[Issue]:
    system, code = coding.get("system"), coding.get("code")
    if not isinstance(code, str):
        return
    if not isinstance(system, str):
        return  # check_coding_systems warns about a code without a system
    version = coding.get("version") if isinstance(coding.get("version"), str) else None
    res = term.validate_code(vs_url, system, code, version=version)
    if res.status == "not-checked":
        yield from _not_checked(node, vs_url, strength, res)
    elif res.invalid:
        if strength == "required" and res.reason == "inactive":
            yield _not_active(code, node, "code")
        sev, rule, _, text, _ = _NOT_IN_VS[strength]
        yield _issue(sev, "code-invalid", text.format(value=f"{system}#{code}", vs=vs.describe(), detail=_detail(res)),
                     rule, node)


def _not_active(code: str, node: Node, suffix: str) -> Issue:
    """STATUS_CODE_WARNING_CODE: the value set leaves inactive codes out (compose.inactive = false)
    and the code is inactive; the HL7 validator says so on the code, besides the binding error."""
    return _issue(Severity.ERROR, "business-rule", f"The concept '{code}' is valid but is not active",
                  "code-not-active", node, suffix)


def _codeable_concept(term: Terminology, node: Node, vs_url: str, vs: ValueSetDef, strength: str,
                      cc: dict) -> Iterator[Issue]:
    codings = [c for c in _as_list(cc.get("coding")) if isinstance(c, dict)]
    coded = [c for c in codings if isinstance(c.get("code"), str)]
    if not coded:
        if strength == "required":
            yield _issue(Severity.ERROR, "code-invalid",
                         f"No code provided, and a code is required from the value set {vs.describe()}",
                         "binding-required", node)
        elif strength == "extensible":
            yield _issue(Severity.WARNING, "code-invalid",
                         f"No code provided, and a code should be provided from the value set {vs.describe()}",
                         "binding-extensible", node)
        return
    results, not_active, fits = [], [], False
    for c in coded:
        system = c.get("system") if isinstance(c.get("system"), str) else None
        if system is None:
            continue  # a code without a system is in no value set (the HL7 validator: not in the value set)
        version = c.get("version") if isinstance(c.get("version"), str) else None
        results.append(term.validate_code(vs_url, system, c["code"], version=version))
        if results[-1].invalid and results[-1].reason == "inactive":
            not_active.append(c)
        fits = fits or (results[-1].valid and not _wrong_display(term, system, c, version))
    if fits:
        return
    if strength == "required":
        for c in not_active:
            i = next(i for i, x in enumerate(_as_list(cc.get("coding"))) if x is c)
            yield _issue(Severity.ERROR, "business-rule", f"The concept '{c['code']}' is valid but is not active",
                         "code-not-active", node).at(expression=f"{node.expression}.coding[{i}].code",
                                                     location=node.location + ("coding", i, "code"))
    unsure = [r for r in results if not r.checked]
    if unsure:
        yield from _not_checked(node, vs_url, strength, unsure[0])
        return
    sev, rule, _, _, text = _NOT_IN_VS[strength]
    summary = ", ".join(f"{c.get('system') or 'null'}#{c.get('code')}" for c in codings)
    yield _issue(sev, "code-invalid", text.format(value=summary, vs=vs.describe()), rule, node)


def _wrong_display(term: Terminology, system: str, coding: dict, version: str | None) -> bool:
    """A coding whose display its code system contradicts does not meet a binding: the HL7
    validator's value set check fails on the display, so besides "Wrong Display Name" it says
    "None of the codings provided are in the value set" (6.10.4, offline; required and extensible)."""
    display = coding.get("display")
    if not isinstance(display, str):
        return False
    found = term.validate_in_system(system, coding["code"], display, version, check_system_uri=False)
    return any(kind == "display" for kind, _ in found.findings)


# --- codes in their code systems ----------------------------------------------------------

def _in_codeable_concept(node: Node) -> bool:
    d = node.definition
    return d.base_path == "CodeableConcept.coding" or d.path == "CodeableConcept.coding"


def check_coding_systems(term: Terminology, node: Node) -> Iterator[Issue]:
    """Check a Coding (or a Quantity's system and code) against its code system, binding or not.

    Unknown code in a known complete code system: error; wrong display: error;
    inactive: warning; code system not available: warning in a CodeableConcept,
    information on its own (warning for SNOMED CT / LOINC / RxNorm / UCUM /
    ICD-9-CM, as the HL7 validator words "running without terminology services").
    """
    value = node.value
    if not isinstance(value, dict):
        return
    code, system = value.get("code"), value.get("system")
    if not isinstance(code, str) or not code:
        return
    quantity = node.type in QUANTITY_TYPES
    in_cc = not quantity and _in_codeable_concept(node)
    if not isinstance(system, str) or not system:
        if quantity:
            return
        msg = ("Coding has no system. A code with no system has no defined meaning, and it cannot be validated. "
               "A system should be provided") if in_cc else \
            "A code with no system has no defined meaning, and it cannot be validated. A system should be provided"
        yield _issue(Severity.WARNING, "invalid" if in_cc else "code-invalid", msg, "coding-no-system", node)
        return
    display = value.get("display") if isinstance(value.get("display"), str) and not quantity else None
    version = value.get("version") if isinstance(value.get("version"), str) else None
    res = term.validate_in_system(system, code, display, version, check_system_uri=not in_cc)
    if res.valid:
        yield from _findings(res, node)
    elif res.invalid:
        yield from _invalid_code(res, node)
    else:
        yield from _unchecked_code(res, node, system, code, in_cc)


def _findings(res: CodeResult, node: Node) -> Iterator[Issue]:
    for kind, msg in res.findings:
        if kind in ("display", "display-ws"):
            yield _issue(Severity.ERROR, "invalid", msg, "code-display", node, "display")
        elif kind in ("inactive", "deprecated"):
            yield _issue(Severity.WARNING, "business-rule", msg, "code-inactive", node)
        elif kind == "case":
            yield _issue(Severity.INFORMATION, "business-rule", msg, "code-case", node, "code")


def _invalid_code(res: CodeResult, node: Node) -> Iterator[Issue]:
    if res.reason in ("bad-system", "supplement"):
        yield _issue(Severity.ERROR, "code-invalid", res.message, "code-system-invalid", node, "system")
    elif res.reason == "grammar":
        yield _issue(Severity.ERROR, "code-invalid", res.message, "code-invalid", node, "code")
    else:
        yield _issue(Severity.ERROR, "code-invalid", res.message, "code-unknown", node, "code")


def _unchecked_code(res: CodeResult, node: Node, system: str, code: str, in_cc: bool) -> Iterator[Issue]:
    """A code that cannot be checked offline: never an error."""
    key = res.reason
    if key == "fragment":
        yield _issue(Severity.WARNING, "code-invalid", res.message, "code-unknown-fragment", node, "code")
        return
    if key == "no-data":
        yield _issue(Severity.INFORMATION, "not-supported", res.message, "terminology-not-checked", node, "code")
        return
    if key in ("not-present", "example") and not in_cc:
        yield _issue(Severity.INFORMATION, "not-supported", res.message, "terminology-not-checked", node, "system")
        return
    if key == "version":
        yield _issue(Severity.WARNING, "not-found", res.message, "code-system-unknown", node, "system")
        return
    if key == "server-side" and not in_cc and system in NO_TX_EXEMPT:
        yield _issue(Severity.WARNING, "business-rule",
                     f"Unable to validate code '{code}' in system '{system}' because the validator is running "
                     "without terminology services",
                     "terminology-not-checked", node)
        return
    msg = f"A definition for CodeSystem '{system}' could not be found, so the code cannot be validated"
    if system in SERVER_SIDE:
        msg += f" ({SERVER_SIDE[system]} is not available offline)"
    rule = "terminology-not-checked" if key == "server-side" else "code-system-unknown"
    # the HL7 validator warns where it validates the coding against a binding (a Coding in a
    # CodeableConcept, or a bound Coding such as designation.use); a lone unbound Coding gets a hint
    bound = node.definition.binding is not None and node.definition.binding.strength != "example"
    yield _issue(Severity.WARNING if in_cc or bound else Severity.INFORMATION, "not-found", msg, rule, node, "system")
