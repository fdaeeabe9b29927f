"""Invariants: each snapshot ``constraint`` evaluated on its element, as the HL7 validator does.

Verdicts follow the HL7 validator (org.hl7.fhir.core ``InstanceValidator.checkInvariant``):

* the expression is first passed through the validator's table of fixes for
  published spec errors (``FHIRPathExpressionFixer``: eld-11's ``":"``, txt-2,
  dom-6, opd-3, ref-1 ...), so we evaluate what it evaluates;
* the result counts as true only when it is a single ``true``, or a non-empty
  collection that is not a single boolean; **an empty result fails**;
* a constraint with the same expression and severity runs once per element.

Where we differ on purpose, we say so: a constraint we cannot evaluate (syntax
error, a function that needs a callback we lack, a terminology question that
cannot be answered offline, the time budget) is reported once per file and key
as "not evaluated" instead of failing or passing silently.

Hot constraints have native equivalents keyed by (key, expression) — a profile
that redefines the expression falls back to FHIRPath.  ele-1, ext-1, sdf-24 and
sdf-25 are exact; dom-3 follows the HL7 validator, which does not run its
FHIRPath either ("takes too long (and is wrong)"): a contained resource must be
reachable from the resource, narrative links included, possibly via other
contained resources.  Constraints that only test presence (cod-1, ref-2, dom-2,
qty-3 ...: 81 of the 309 core R5 expressions) run as the engine's existence tests,
which give what the compiled expression gives without setting up an evaluation;
those that begin with presence tests (eld-6 ``fixed.empty() or ...``) are decided by
them where they settle the result, and evaluated otherwise.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.model import Constraint, ElementDef, Node, ResourceFrame, TypeRef
from fhirpkg.validation.fhirpath import (
    FhirPathEngine,
    choice_type,
    FhirPathError,
    FhirPathSyntaxError,
    NotEvaluable,
    count_children,
    has_value,
)
from fhirpkg.validation import xhtml

# --------------------------------------------------------------------------- the validator's fixes

#: Whole-expression rewrites from the HL7 validator's FHIRPathExpressionFixer that can apply to
#: R5, R4B and R4 content (an R4 expression never matches an R5 one; STU3-only ones are left out).
EXPRESSION_FIXES: dict[str, str] = {
    # eld-11: double-quoted string is not FHIRPath
    "binding.empty() or type.code.empty() or type.code.contains(\":\") or type.select((code = 'code') or "
    "(code = 'Coding') or (code='CodeableConcept') or (code = 'Quantity') or (code = 'string') or (code = 'uri') "
    "or (code = 'Duration')).exists()":
    "binding.empty() or type.code.empty() or type.code.contains(':') or type.select((code = 'code') or "
    "(code = 'Coding') or (code='CodeableConcept') or (code = 'Quantity') or (code = 'string') or (code = 'uri') "
    "or (code = 'Duration')).exists()",
    # ref-1 (R5 ballot text): an absent reference is fine
    "reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained.id"
    ".trace('ids')) or (reference='#' and %rootResource!=%resource)":
    "reference.exists() implies (reference.startsWith('#').not() or (reference.substring(1).trace('url') in "
    "%rootResource.contained.id.trace('ids')) or (reference='#' and %rootResource!=%resource))",
    # ref-1 (R4/R4B text): an absent reference, or '#' (the container), is fine
    "reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained.id"
    ".trace('ids'))":
    "reference.exists() implies (reference = '#' or (reference.startsWith('#').not() or "
    "(reference.substring(1).trace('url') in %rootResource.contained.id.trace('ids'))))",
    "probability is decimal implies (probability as decimal) <= 100":
    "(probability.exists() and (probability is decimal)) implies ((probability as decimal) <= 100)",
    "enableWhen.count() > 2 implies enableBehavior.exists()": "enableWhen.count() >= 2 implies enableBehavior.exists()",
    "generated='generated' implies source.empty()": "generation='generated' implies source.empty()",
    "fullUrl.contains('/_history/').not()": "fullUrl.exists() implies fullUrl.contains('/_history/').not()",
    "name.matches('[A-Z]([A-Za-z0-9_]){0,254}')": "name.exists() implies name.matches('^[A-Z]([A-Za-z0-9_]){0,254}$')",
    "url.matches('([^|#])*')": "$this.matches('([^|#])*')",
    "isModifier implies isModifierReason.exists()": "(isModifier.exists() and isModifier) implies isModifierReason.exists()",
    "differential.element.all(id) and differential.element.id.trace('ids').isDistinct()":
    "differential.element.all(id.exists()) and differential.element.id.trace('ids').isDistinct()",
    "snapshot.element.all(id) and snapshot.element.id.trace('ids').isDistinct()":
    "snapshot.element.all(id.exists()) and snapshot.element.id.trace('ids').isDistinct()",
    "(component.empty() and hasMember.empty()) implies (dataAbsentReason or value)":
    "(component.empty() and hasMember.empty()) implies (dataAbsentReason.exists() or value.exists())",
}

#: Key-based rewrites the validator applies to R5 content whatever the expression.
KEY_FIXES: dict[str, str] = {
    "opd-3": "targetProfile.exists() implies (type = 'Reference' or type = 'canonical' or "
             "type.memberOf('http://hl7.org/fhir/ValueSet/all-resource-types'))",
    "txt-2": "htmlChecks2()",
    "que-7": "operator = 'exists' implies (answer is boolean)",
    "dom-6": "(%rootResource != $this) or text.`div`.exists()",
}


def effective_expression(key: str, expression: str) -> str:
    """The expression the HL7 validator actually evaluates for this constraint."""
    if key in KEY_FIXES:
        return KEY_FIXES[key]
    return EXPRESSION_FIXES.get(expression, expression)


# --------------------------------------------------------------------------- native equivalents

Native = Callable[[FhirPathEngine, Node], bool]

ELE_1 = "hasValue() or (children().count() > id.count())"
EXT_1 = "extension.exists() != value.exists()"
SDF_24 = ("element.where(type.where(code='Reference').exists() and path.endsWith('.reference') and "
          "type.targetProfile.exists() and (path.substring(0,$this.path.length()-10) in "
          "%context.element.where(type.where(code='CodeableReference').exists()).path)).exists().not()")
SDF_25 = ("element.where(type.where(code='CodeableConcept').exists() and path.endsWith('.concept') and "
          "binding.exists() and (path.substring(0,$this.path.length()-8) in "
          "%context.element.where(type.where(code='CodeableReference').exists()).path)).exists().not()")
DOM_3 = ("contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().ofType(canonical) | "
         "%resource.descendants().ofType(uri) | %resource.descendants().ofType(url))) or "
         "descendants().where(reference = '#').exists() or descendants().where(ofType(canonical) = '#').exists() or "
         "descendants().where(ofType(canonical) = '#').exists()).not()).trace('unmatched', id).empty()")


def native_ele1(engine: FhirPathEngine, node: Node) -> bool:
    """ele-1: a value, or some child other than id (extension-only primitives pass).

    Complex elements always pass, as in the HL7 validator (see ``fhirpath.has_value``).
    """
    if has_value(node.value):
        return True
    total, ids = count_children(node.value, node.shadow)
    return total > ids


def native_ext1(engine: FhirPathEngine, node: Node) -> bool:
    """ext-1: an extension has either nested extensions or a value[x], not both."""
    data = node.value
    if not isinstance(data, dict):
        return True  # FHIRPath on a non-object: both sides empty, so false != false
    has_extensions = any(x is not None for x in data.get("extension") or ())
    has_value_x = any(data.get(k) is not None or isinstance(data.get("_" + k), dict)
                      for k, _ in engine.model.member_keys("Extension", "value"))
    return has_extensions != has_value_x


def _type_codes(element: dict) -> list:
    types = element.get("type")
    return [t.get("code") for t in types if isinstance(t, dict)] if isinstance(types, list) else []


def _has_target_profile(element: dict) -> bool:
    types = element.get("type")
    return isinstance(types, list) and any(isinstance(t, dict) and (t.get("targetProfile") or t.get("_targetProfile"))
                                           for t in types)


def _codeable_reference_paths(elements: list) -> set:
    return {e.get("path") for e in elements if isinstance(e, dict) and "CodeableReference" in _type_codes(e)}


def native_sdf24(engine: FhirPathEngine, node: Node) -> bool:
    """sdf-24: a Reference under a CodeableReference has no targetProfile of its own (O(n), not O(n²))."""
    elements = node.value.get("element") or [] if isinstance(node.value, dict) else []
    containers = _codeable_reference_paths(elements)
    for e in elements:
        path = e.get("path") if isinstance(e, dict) else None
        if (isinstance(path, str) and path.endswith(".reference") and "Reference" in _type_codes(e)
                and _has_target_profile(e) and path[:-10] in containers):
            return False
    return True


def native_sdf25(engine: FhirPathEngine, node: Node) -> bool:
    """sdf-25: a CodeableConcept under a CodeableReference has no binding of its own."""
    elements = node.value.get("element") or [] if isinstance(node.value, dict) else []
    containers = _codeable_reference_paths(elements)
    for e in elements:
        path = e.get("path") if isinstance(e, dict) else None
        if (isinstance(path, str) and path.endswith(".concept") and "CodeableConcept" in _type_codes(e)
                and (e.get("binding") is not None or e.get("_binding") is not None) and path[:-8] in containers):
            return False
    return True


_ID_REF = re.compile(r"#([A-Za-z0-9\-.]{0,64})")
_NARRATIVE_REF = re.compile(r"""\s(?:href|src)\s*=\s*["']#([^"']+)["']""")


def _internal_references(value, found: set) -> set:
    """Every '#id' a resource part points at: references, canonicals/uris, narrative links."""
    stack = [value]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            for key, v in x.items():
                if key == "div" and isinstance(v, str):
                    found.update(_NARRATIVE_REF.findall(v))
                else:
                    stack.append(v)
        elif isinstance(x, list):
            stack.extend(x)
        elif isinstance(x, str) and x[:1] == "#" and (m := _ID_REF.fullmatch(x)):
            found.add(m.group(1))
    return found


def dom3_orphans(resource: dict) -> list[int]:
    """Indexes of contained resources nothing in the resource leads to (the HL7 validator's dom-3)."""
    contained = resource.get("contained")
    if not isinstance(contained, list) or not contained:
        return []
    base = _internal_references({k: v for k, v in resource.items() if k != "contained"}, set())
    refs = [_internal_references(c, set()) for c in contained]
    ids = [c.get("id") if isinstance(c, dict) and isinstance(c.get("id"), str) else None for c in contained]

    def reachable(i: int, visited: frozenset) -> bool:
        if ids[i] in base or "" in refs[i]:
            return True
        return any(j != i and j not in visited and ids[i] in refs[j] and reachable(j, visited | {i})
                   for j in range(len(contained)))

    return [i for i in range(len(contained)) if not reachable(i, frozenset())]


def native_dom3(engine: FhirPathEngine, node: Node) -> bool:
    return isinstance(node.value, dict) and not dom3_orphans(node.value)


QUE_2 = "descendants().linkId.isDistinct()"
SDF_9 = ("children().element.where(path.contains('.').not()).label.empty() and "
         "children().element.where(path.contains('.').not()).code.empty() and "
         "children().element.where(path.contains('.').not()).requirements.empty()")


def _compiled(engine: FhirPathEngine, expression: str, node: Node) -> bool:
    """The expression evaluated as check_node would, for input a native form does not decide."""
    return passes(engine.evaluate(engine.compile(expression), node.value, type_path=type_path(node),
                                  resource=node.frame.json, root_resource=root_resource(node.frame),
                                  context=node.frame, shadow=node.shadow))


def _item_link_ids(value: dict) -> list | None:
    """The linkIds of a Questionnaire's items and nested items, or None when the resource is not
    plain enough to be sure that is what ``descendants().linkId`` finds (a linkId outside an item,
    in a contained resource, with a '_linkId' shadow, or not a string; an item that is not an object)."""
    ids: list = []
    stack = [(value, False)]
    while stack:
        x, is_item = stack.pop()
        if isinstance(x, dict):
            if "_linkId" in x:
                return None
            if "linkId" in x:
                if not is_item or not isinstance(x["linkId"], str):
                    return None
                ids.append(x["linkId"])
            for k, v in x.items():
                if k == "item" and (is_item or x is value):
                    if not isinstance(v, list) or not all(isinstance(i, dict) for i in v):
                        return None
                    stack.extend((i, True) for i in v)
                else:
                    stack.append((v, False))
        elif isinstance(x, list):
            stack.extend((v, False) for v in x)
    return ids


def native_que2(engine: FhirPathEngine, node: Node) -> bool:
    """que-2, the linkIds are unique: a set over the items' linkIds, not a walk of every descendant
    node (8 ms per Questionnaire in the R5 examples); other input goes to the expression."""
    ids = _item_link_ids(node.value) if isinstance(node.value, dict) else None
    if ids is None:
        return _compiled(engine, QUE_2, node)
    return len(set(ids)) == len(ids)


def native_sdf9(engine: FhirPathEngine, node: Node) -> bool:
    """sdf-9, no label, code or requirements on the root element of the snapshot and the differential;
    other input (shadows, odd shapes, an unknown property holding 'element') goes to the expression."""
    value = node.value
    if not isinstance(value, dict):
        return _compiled(engine, SDF_9, node)
    ok = True
    for key, child in value.items():
        parts = child if isinstance(child, list) else [child]
        if key not in ("snapshot", "differential"):
            if any(isinstance(p, dict) and ("element" in p or "_element" in p) for p in parts):
                return _compiled(engine, SDF_9, node)
            continue
        if not isinstance(child, dict):
            return _compiled(engine, SDF_9, node)
        elements = child.get("element")
        if elements is None:
            continue
        if not isinstance(elements, list):
            return _compiled(engine, SDF_9, node)
        for e in elements:
            if not isinstance(e, dict) or any(k in e for k in ("_path", "_label", "_requirements", "_code")):
                return _compiled(engine, SDF_9, node)
            path = e.get("path")
            if path is None:
                continue
            code = e.get("code")
            if not isinstance(path, str) or not isinstance(code, (list, type(None))):
                return _compiled(engine, SDF_9, node)
            if "." not in path and (e.get("label") is not None or code or e.get("requirements") is not None):
                ok = False
    return ok


#: Native equivalents by (key, R5 expression).
NATIVE: dict[tuple[str, str], Native] = {
    ("ele-1", ELE_1): native_ele1,
    ("ext-1", EXT_1): native_ext1,
    ("sdf-24", SDF_24): native_sdf24,
    ("sdf-25", SDF_25): native_sdf25,
    ("dom-3", DOM_3): native_dom3,
    ("que-2", QUE_2): native_que2,
    ("sdf-9", SDF_9): native_sdf9,
}


def native_dom6(engine: FhirPathEngine, node: Node) -> bool:
    """dom-6 as the HL7 validator fixes it, ``(%rootResource != $this) or text.`div`.exists()``:
    a resource other than the root (a contained one) passes; the root needs a narrative div."""
    if root_resource(node.frame) is not node.value:
        return True
    test = engine.existence(_DOM_6_ROOT)
    if test is None:  # an engine with functions of its own
        return _compiled(engine, _DOM_6_ROOT, node)
    return test(node.value, type_path(node), node.shadow)


_DOM_6_ROOT = "text.`div`.exists()"


#: Native equivalents by the expression actually evaluated (after the validator's fixes).
NATIVE_FIXED: dict[str, Native] = {KEY_FIXES["dom-6"]: native_dom6}

# Decided early, by expression: the answer for plain values (an integer min, a max of digits or
# '*'), None for anything else, which the compiled expression then evaluates.  eld-2 and eld-3 run
# on every ElementDefinition; the compiled form of eld-2 costs as much as five presence tests.
ELD_2 = "min.empty() or max.empty() or (max = '*') or iif(max != '*', min <= max.toInteger())"
ELD_3 = "empty() or ($this = '*') or (toInteger() >= 0)"
_DIGITS = re.compile(r"[0-9]+")  # what toInteger() reads as a non-negative integer (a subset: no sign)


def early_eld2(value, type_path: str, shadow: dict | None) -> bool | None:
    if type(value) is not dict or "_min" in value or "_max" in value:
        return None
    low, high = value.get("min"), value.get("max")
    if low is None or high is None:
        return True  # min.empty() or max.empty()
    if type(low) is not int or type(high) is not str:
        return None
    if high == "*":
        return True
    return low <= int(high) if _DIGITS.fullmatch(high) else None


def early_eld3(value, type_path: str, shadow: dict | None) -> bool | None:
    """On ElementDefinition.max itself: '*' or a non-negative integer."""
    if type(value) is not str:
        return None
    return True if value == "*" or _DIGITS.fullmatch(value) else None


EARLY_FIXED: dict[str, Callable] = {ELD_2: early_eld2, ELD_3: early_eld3}


# --------------------------------------------------------------------------- run state


@dataclass
class InvariantRun:
    """State for one file's validation: what was already reported as not evaluated, and counters.

    Create one per file and pass it to every ``check_node`` call for that file.
    """

    file: str = ""
    #: How best-practice constraints (dom-6, eld-24, ...) are reported: hint | warning | error | ignore.
    #: The HL7 validator's default is warning; its test suite runs with ignore.
    best_practice: str = "warning"
    #: Apply the HL7 validator's fixes for published expression errors (eld-11, txt-2, dom-6, ...).
    #: Off, eld-11 is reported once as "not evaluated: syntax error".
    hl7_fixes: bool = True
    profile: bool = False  # collect seconds per constraint key in ``cost``
    not_evaluated: set[str] = field(default_factory=set)
    evaluations: int = 0
    native: int = 0
    cost: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def first_report(self, key: str) -> bool:
        if key in self.not_evaluated:
            return False
        self.not_evaluated.add(key)
        return True


#: The name the validator's driver looks for (``fhirpkg.validation.Validator``).
RunState = InvariantRun


@dataclass(frozen=True, slots=True)
class _Plan:
    expression: str  # what is evaluated (after the validator's fixes)
    native: Native | None
    compiled: object | None
    problem: str | None  # why it cannot be evaluated at all
    syntax: bool = False
    #: presence tests at the start of the expression that often settle it (engine.early_decision)
    early: Callable | None = None


def _plan(engine: FhirPathEngine, constraint: Constraint, fixes: bool) -> _Plan:
    key = ("invariant-plan", constraint.key, constraint.expression, fixes)
    plan = engine.memo.get(key)
    if plan is None:
        plan = engine.memo[key] = _make_plan(engine, constraint, fixes)
    return plan


def _make_plan(engine: FhirPathEngine, constraint: Constraint, fixes: bool) -> _Plan:
    expression = effective_expression(constraint.key, constraint.expression) if fixes else constraint.expression
    native = NATIVE.get((constraint.key, constraint.expression)) or NATIVE_FIXED.get(expression)
    if native is not None:
        return _Plan(expression, native, None, None)
    existence = engine.existence(expression)
    if existence is not None:  # cod-1, ref-2, dom-2, qty-3, ...: presence tests, without an evaluation context
        return _Plan(expression, lambda _, node: existence(node.value, type_path(node), node.shadow), None, None)
    try:
        return _Plan(expression, None, engine.compile(expression), None,
                     early=EARLY_FIXED.get(expression) or engine.early_decision(expression))
    except FhirPathSyntaxError as e:
        return _Plan(expression, None, None, f"{e} in '{expression}'", syntax=True)
    except FhirPathError as e:
        return _Plan(expression, None, None, f"{e} in '{expression}'")


# --------------------------------------------------------------------------- the layer


def default_engine(*, resolve=None, member_of=None, conforms_to=None, time_budget: float = 2.0) -> FhirPathEngine:
    """An engine with our XHTML checker for txt-1; the other callbacks come from their layers."""
    return FhirPathEngine(resolve=resolve, member_of=member_of, conforms_to=conforms_to,
                          html_checks=xhtml.html_checks, time_budget=time_budget)


def passes(result: list) -> bool:
    """The HL7 validator's reading of an invariant's result: empty fails, one boolean is itself."""
    if len(result) == 1 and isinstance(result[0], bool):
        return result[0]
    return len(result) > 0


def failure_message(constraint: Constraint) -> str:
    """``Constraint failed: key: 'human'`` plus ``(defined in source)`` when the source is known."""
    message = f"Constraint failed: {constraint.key}: '{constraint.human}'"
    return f"{message} (defined in {constraint.source})" if constraint.source else message


def type_path(node: Node) -> str:
    """The node's FHIRPath type context: its type name, or its element path for backbone elements."""
    t = node.type
    if t and "." not in t and t not in ("BackboneElement", "Element"):
        return t
    reference = node.definition.content_reference
    if reference:
        return reference.split("#", 1)[-1]
    return node.definition.path


def root_resource(frame: ResourceFrame) -> dict:
    """%rootResource: the container for a contained resource; a Bundle entry is its own root."""
    while frame.parent is not None and len(frame.location) >= 2 and frame.location[-2] == "contained":
        frame = frame.parent
    return frame.json


_SEVERITY = {"error": Severity.ERROR, "warning": Severity.WARNING}
_BEST_PRACTICE_SEVERITY = {"hint": Severity.INFORMATION, "warning": Severity.WARNING, "error": Severity.ERROR}

#: Core R5 constraints marked with the elementdefinition-bestpractice extension
#: (used when the Constraint record does not carry the flag itself).
CORE_BEST_PRACTICE = frozenset({"app-6", "dom-6", "eld-24", "sdf-26"})


def is_best_practice(constraint: Constraint) -> bool:
    """Flagged by the definition's elementdefinition-bestpractice extension, or one of the core
    best-practice constraints (a copy of which may have lost the extension)."""
    if getattr(constraint, "best_practice", False):
        return True
    return constraint.key in CORE_BEST_PRACTICE and (
        not constraint.source or constraint.source.startswith("http://hl7.org/fhir/StructureDefinition/"))


def check_node(engine: FhirPathEngine, node: Node, constraints: Iterable[Constraint],
               run: InvariantRun | None = None) -> Iterator[Issue]:
    """Evaluate each constraint on one instance node; yield failures and not-evaluated notes."""
    run = run if run is not None else InvariantRun()
    done: set = set()
    fixes = run.hl7_fixes
    tp = None  # the node's type path, worked out when a constraint first needs it
    for constraint in constraints:
        prepared = _prepared(engine, constraint, fixes)
        if prepared is None:
            continue
        once, best_practice, plan, exempt = prepared
        if once in done or (exempt and _exempt(constraint, node)):
            continue
        if best_practice and run.best_practice == "ignore":
            continue
        done.add(once)
        if plan.problem is not None:
            yield from _not_evaluated(run, constraint, node, plan.problem, syntax=plan.syntax)
            continue
        started = time.perf_counter() if run.profile else 0.0
        try:
            if plan.native is not None:
                run.native += 1
                ok = plan.native(engine, node)
            else:
                if tp is None:
                    tp = type_path(node)
                if plan.early is not None and (ok := plan.early(node.value, tp, node.shadow)) is not None:
                    run.native += 1
                else:
                    ok = passes(engine.evaluate(
                        plan.compiled, node.value, type_path=tp, resource=node.frame.json,
                        root_resource=root_resource(node.frame), context=node.frame, shadow=node.shadow,
                        variables={"profile": [constraint.source]} if constraint.source else None))
        except NotEvaluable as e:
            yield from _not_evaluated(run, constraint, node, str(e))
            continue
        except FhirPathError as e:
            yield from _not_evaluated(run, constraint, node, str(e))
            continue
        finally:
            run.evaluations += 1
            if run.profile:
                run.cost[constraint.key] = run.cost.get(constraint.key, 0.0) + time.perf_counter() - started
                run.calls[constraint.key] = run.calls.get(constraint.key, 0) + 1
        if not ok:
            yield from _failures(constraint, node, run.best_practice if best_practice else None)


def _prepared(engine: FhirPathEngine, constraint: Constraint, fixes: bool):
    """What check_node needs of a constraint, worked out once per constraint object:
    (once-key, best practice, plan, exemption applies), or None when it has no expression.
    Keyed by the object's id; the entry holds the object, so the id is not reused meanwhile."""
    key = ("invariant-prepared", id(constraint), fixes)
    entry = engine.memo.get(key)
    if entry is None or entry[0] is not constraint:
        if not constraint.expression:
            prepared = None
        else:
            # keyed as the validator does, on the fixed expression: txt-1 and txt-2 share "htmlChecks()"
            fixed = effective_expression(constraint.key, constraint.expression) if fixes else constraint.expression
            prepared = ((fixed, constraint.severity), is_best_practice(constraint), _plan(engine, constraint, fixes),
                        constraint.key == "eld-24")
        entry = engine.memo[key] = (constraint, prepared)
    return entry[1]


def _exempt(constraint: Constraint, node: Node) -> bool:
    """eld-24 is not checked on extension urls and ids (as in the HL7 validator)."""
    if constraint.key == "eld-24" and isinstance(node.value, dict):
        path = node.value.get("path")
        return isinstance(path, str) and (path.endswith("xtension.url") or path.endswith(".id"))
    return False


def _failures(constraint: Constraint, node: Node, best_practice: str | None) -> Iterator[Issue]:
    severity = _SEVERITY.get(constraint.severity, Severity.INFORMATION)
    suffix = ""
    if best_practice is not None:
        severity = _BEST_PRACTICE_SEVERITY.get(best_practice, Severity.WARNING)
        suffix = " (Best Practice Recommendation)"
    if constraint.key == "dom-3" and isinstance(node.value, dict) and (orphans := dom3_orphans(node.value)):
        for i in orphans:
            contained = node.value["contained"][i]
            ident = contained.get("id") if isinstance(contained, dict) else None
            ident = "null" if ident is None else ident  # the HL7 validator's (Java's) word for no id
            yield Issue(severity, "invariant",
                        f"The contained resource '{ident}' is not referenced to from elsewhere in the containing "
                        "resource nor does it refer to the containing resource (dom-3)",
                        constraint.key, f"{node.expression}.contained[{i}]",
                        location=(*node.location, "contained", i))
        return
    yield Issue(severity, "invariant", failure_message(constraint) + suffix, constraint.key, node.expression,
                location=node.location)


def _not_evaluated(run: InvariantRun, constraint: Constraint, node: Node, reason: str,
                   syntax: bool = False) -> Iterator[Issue]:
    if run.first_report(constraint.key):
        yield Issue(Severity.WARNING if syntax else Severity.INFORMATION, "processing",
                    f"Constraint not evaluated: {constraint.key}: {reason}", constraint.key, node.expression,
                    location=node.location)


# --------------------------------------------------------------------------- scaffolding
# Until the structure walker lands, tests and benchmarks find context nodes here:
# snapshot element paths walked over the JSON, datatype definitions applied to
# the nodes of their type, inherited root constraints (dom-2..dom-6) taken from
# the base definitions.  Top-level resource only (no Bundle entries or contained
# resources), one level into contentReference elements, as the baseline did.


def constraint_of(entry: dict) -> Constraint:
    return Constraint(entry["key"], entry.get("severity", "error"), entry.get("human", ""),
                      entry.get("expression"), entry.get("source", ""))


def snapshot_elements(sd: dict, inherited_root: Iterable[Constraint] = ()) -> list[ElementDef]:
    """ElementDefs (path, types, constraints) from a snapshot; ``inherited_root`` adds missing root keys."""
    out = []
    for i, e in enumerate(sd.get("snapshot", {}).get("element", [])):
        constraints = [constraint_of(c) for c in e.get("constraint", ())]
        if i == 0:
            have = {c.key for c in constraints}
            constraints += [c for c in inherited_root if c.key not in have]
        path = e["path"]
        out.append(ElementDef(
            id=e.get("id", path), path=path, name=path.rsplit(".", 1)[-1], min=e.get("min", 0),
            max=None if e.get("max", "*") == "*" else int(e.get("max", "1")),
            types=tuple(TypeRef(t.get("code", "")) for t in e.get("type", ())),
            content_reference=e.get("contentReference"), constraints=tuple(constraints)))
    return out


class SnapshotIndex:
    """Base StructureDefinitions by type, compiled to ElementDefs on first use."""

    def __init__(self, structure_definitions: Iterable[dict]):
        self.by_url: dict[str, dict] = {}
        self.by_type: dict[str, dict] = {}
        for sd in structure_definitions:
            self.by_url[sd["url"]] = sd
            if sd.get("derivation") != "constraint" and sd.get("kind") != "logical":
                self.by_type.setdefault(sd["type"], sd)
        self._elements: dict[str, list[ElementDef]] = {}

    def inherited_root(self, sd: dict) -> list[Constraint]:
        """Root constraints of the base definitions (R5 snapshots of 36 resources lack dom-2..dom-6)."""
        out, seen, url = [], set(), sd.get("baseDefinition")
        while url and url in self.by_url and url not in seen:
            seen.add(url)
            base = self.by_url[url]
            root = base.get("snapshot", {}).get("element", [{}])[0]
            out.extend(constraint_of(c) for c in root.get("constraint", ()))
            url = base.get("baseDefinition")
        return out

    def elements(self, type_name: str) -> list[ElementDef]:
        found = self._elements.get(type_name)
        if found is None:
            sd = self.by_type.get(type_name)
            found = [] if sd is None else snapshot_elements(sd, self.inherited_root(sd))
            self._elements[type_name] = found
        return found

    def is_datatype(self, node: Node) -> bool:
        """Complex datatypes, and primitives that carry extensions (their ``_x`` shadow)."""
        sd = self.by_type.get(node.type)
        if sd is None:
            return False
        return sd.get("kind") == "complex-type" or (sd.get("kind") == "primitive-type" and node.shadow is not None)

    def constraint_nodes(self, resource: dict, *, datatypes: bool = True) -> list[tuple[Node, list[Constraint]]]:
        """(node, constraints) for every node of ``resource`` that has constraints to check."""
        rtype = resource.get("resourceType", "")
        frame = ResourceFrame(resource, rtype, rtype, ())
        found: dict[tuple, tuple[Node, list[Constraint]]] = {}
        self._collect(frame, rtype, None, found, datatypes, 0)
        return list(found.values())

    def _collect(self, frame, type_name, start, found, datatypes, depth):
        for element in self.elements(type_name):
            for node in instance_nodes(frame, element, start):
                entry = found.setdefault(node.location, (node, []))
                entry[1].extend(element.constraints)
                if (datatypes and depth < 6 and node is not start and element.path.count(".") > 0
                        and self.is_datatype(node)):
                    self._collect(frame, node.type, node, found, datatypes, depth + 1)


def instance_nodes(frame: ResourceFrame, element: ElementDef, start: Node | None = None) -> Iterator[Node]:
    """Every instance node at ``element.path``, from the resource root or from ``start``."""
    segments = element.path.split(".")[1:]
    if start is None:
        current = [(frame.json, None, frame.expression, frame.location, frame.type)]
    else:
        current = [(start.value, start.shadow, start.expression, start.location, start.type)]
    last = len(segments) - 1
    for n, segment in enumerate(segments):
        following = []
        for value, parent_shadow, expression, location, _t in current:
            if not isinstance(value, dict):
                # a primitive's id and extensions live in its _x shadow
                if not (isinstance(parent_shadow, dict) and segment in ("id", "extension")):
                    continue
                value, location = parent_shadow, _shadow_location(location)
            for key, type_name in _keys_for(value, segment, element if n == last else None):
                v, shadow = value.get(key), value.get("_" + key)
                name = segment.replace("[x]", "")
                if isinstance(v, list) or isinstance(shadow, list):
                    vs = v if isinstance(v, list) else []
                    ss = shadow if isinstance(shadow, list) else []
                    for i in range(max(len(vs), len(ss))):
                        vi = vs[i] if i < len(vs) else None
                        si = ss[i] if i < len(ss) else None
                        if vi is not None or isinstance(si, dict):
                            following.append((vi, si if isinstance(si, dict) else None,
                                              f"{expression}.{name}[{i}]", (*location, key, i), type_name))
                elif v is not None or isinstance(shadow, dict):
                    following.append((v, shadow if isinstance(shadow, dict) else None,
                                      f"{expression}.{name}", (*location, key), type_name))
        current = following
    for value, shadow, expression, location, type_name in current:
        if start is not None and not segments:
            yield start
        else:
            yield Node(value, shadow, type_name, element, expression, location, frame)


def _shadow_location(location: tuple) -> tuple:
    """("given", 1) -> ("_given", 1); ("status",) -> ("_status",)."""
    if location and isinstance(location[-1], int) and len(location) >= 2:
        return (*location[:-2], "_" + str(location[-2]), location[-1])
    return (*location[:-1], "_" + str(location[-1])) if location else location


def _keys_for(value: dict, segment: str, element: ElementDef | None):
    if segment.endswith("[x]"):
        base = segment[:-3]
        for key in list(value):
            if key.startswith(base) and len(key) > len(base) and key[len(base)].isupper():
                yield key, choice_type(key[len(base):])
            elif key.startswith("_" + base) and key[1:] not in value and len(key) > len(base) + 1 \
                    and key[len(base) + 1].isupper():
                yield key[1:], choice_type(key[len(base) + 1:])
        return
    codes = element.type_codes if element is not None else ()
    yield segment, codes[0] if len(codes) == 1 else "BackboneElement"


__all__ = [
    "InvariantRun", "RunState", "check_node", "default_engine", "passes", "failure_message", "effective_expression",
    "type_path", "root_resource", "dom3_orphans", "NATIVE", "is_best_practice", "CORE_BEST_PRACTICE", "EXPRESSION_FIXES", "KEY_FIXES",
    "snapshot_elements", "instance_nodes", "constraint_of", "SnapshotIndex",
]
