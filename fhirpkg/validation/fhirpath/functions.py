"""The functions the engine adds to fhirpathpy's table or replaces in it (``ADDED_FUNCTIONS``,
``REPLACED_FUNCTIONS``), and the table itself (``DEFAULT_REGISTRY``)."""
from __future__ import annotations

import re
import time
from datetime import datetime
from collections import deque
from functools import lru_cache

from fhirpathpy.engine import util as fp_util
from fhirpathpy.engine.invocations.collections import contains_impl
from fhirpathpy.engine.invocations import invocation_registry as FP_REGISTRY
from fhirpathpy.engine.nodes import FP_DateTime, FP_Time, FP_TimeBase, ResourceNode, TypeInfo

from fhirpkg.validation.fhirpath.common import (
    EvaluationTimeout,
    FhirPathError,
    NotEvaluable,
    XHTML_CONTENT_FUNCTION,
)
from fhirpkg.validation.fhirpath.model import JsonNode, as_resource_node, children, has_value, unwrap
from fhirpkg.validation.fhirpath.boundaries import boundary_of
from fhirpkg.validation.fhirpath.quantities import as_quantity, compare_quantities, units_comparable

#: The fhirpathpy release whose internals this module was written against.

# --------------------------------------------------------------------------- added functions


def _engine(ctx):
    return ctx["engine"]


def fn_children(ctx, focus):
    return children(ctx["types"], focus)


def fn_descendants(ctx, focus):
    model = ctx["types"]
    out: list = []
    level = children(model, focus)
    while level:
        if time.perf_counter() > ctx["deadline"]:
            raise EvaluationTimeout("time budget exceeded")
        out.extend(level)
        level = children(model, level)
    return out


def fn_extension(ctx, focus, url):
    out = []
    for item in focus:
        if not isinstance(item, ResourceNode):
            continue
        holder = item.data if isinstance(item.data, dict) else item._data
        if isinstance(holder, dict):
            for ext in holder.get("extension") or ():
                if isinstance(ext, dict) and ext.get("url") == url:
                    out.append(JsonNode(ext, "Extension"))
    return out


def fn_trace(ctx, focus, name="", projection=None):
    """No output unless the engine was given a trace callback (fhirpathpy prints)."""
    trace = _engine(ctx).trace
    if trace is not None:
        trace(name, [unwrap(x) for x in (projection(focus) if projection else focus)])
    return focus


def fn_of_type(ctx, focus, type_info):
    """ofType() with the model's type hierarchy, cached (fhirpathpy re-derives it per item)."""
    types = ctx["types"]
    wanted, namespace = type_info.name, type_info.namespace
    out = []
    for item in focus:
        if isinstance(item, ResourceNode) and namespace != "System":
            path = item.path
            if path is None or path.startswith("System."):
                if TypeInfo.from_value(item).is_(type_info):
                    out.append(item)
            elif "." in path:
                if wanted in ("BackboneElement", "Element"):
                    out.append(item)
            elif types.is_type(path, wanted):
                out.append(item)
        elif TypeInfo.from_value(item).is_(type_info):
            out.append(item)
    return out


def fn_where(ctx, focus, criteria):
    out = []
    for i, item in enumerate(focus):
        ctx["$index"] = i
        result = criteria(item)
        if len(result) == 1 and fp_util.get_data(result[0]) is True:
            out.append(item)
    return out


def fn_exists(ctx, focus, criteria=None):
    return bool(fn_where(ctx, focus, criteria) if criteria is not None else focus)


def fn_repeat(ctx, focus, projection):
    """Items reached by repeating ``projection``; tree nodes are deduplicated by identity."""
    out, seen, queue = [], set(), deque(focus)
    while queue:
        item = queue.popleft()
        for found in projection(item):
            data = found.data if isinstance(found, ResourceNode) else found
            key = id(data) if isinstance(data, (dict, list)) else ("v", repr(data))
            if key not in seen:
                seen.add(key)
                out.append(found)
                queue.append(found)
    return out


def fn_single(ctx, focus):
    if len(focus) > 1:
        raise FhirPathError(f"single(): {len(focus)} items")
    return focus


def fn_has_value(ctx, focus):
    return len(focus) == 1 and has_value(unwrap(focus[0]))


def fn_get_value(ctx, focus):
    """The System value of a single primitive; nothing for complex elements or extension-only primitives."""
    if len(focus) == 1:
        data = unwrap(focus[0])
        if has_value(data) and not isinstance(data, (dict, list)):
            return fp_util.get_data(focus[0])
    return []


# String functions as the HL7 validator runs them: lenient about collections
# (fhirpathpy raises on more than one item, which would leave eld-11 unevaluated).


def _text(item) -> str | None:
    data = unwrap(item)
    return data if isinstance(data, str) else None


def fn_starts_with(ctx, focus, prefix):
    if not focus or prefix == []:
        return []
    if prefix == "":
        return True
    text = _text(focus[0])
    return [] if text is None else text.startswith(prefix)


def fn_ends_with(ctx, focus, suffix):
    if not focus or suffix == []:
        return []
    if suffix == "":
        return True
    text = _text(focus[0])
    return [] if text is None else text.endswith(suffix)


def fn_contains(ctx, focus, part):
    if len(focus) != 1 or part == []:
        return []
    if part == "":
        return True
    text = _text(focus[0])
    return [] if text is None else part in text


def fn_matches(ctx, focus, regex):
    if not focus or regex == []:
        return []
    if len(focus) != 1 or not regex:
        return False
    text = _text(focus[0])
    if text is None:
        return []
    return bool(text) and compile_regex(regex).search(text) is not None


def fn_substring(ctx, focus, start, length=None):
    if not focus or start == []:
        return []
    if length == []:
        return []
    text = _text(focus[0]) if len(focus) == 1 else None
    if text is None or start < 0 or start >= len(text):
        return []
    part = text[start:] if length is None else text[start:start + max(length, 0)]
    return part if part else []


def fn_length(ctx, focus):
    text = _text(focus[0]) if len(focus) == 1 else None
    return [] if text is None else len(text)


@lru_cache(maxsize=512)
def compile_regex(pattern: str):
    """matches(): the pattern compiled once, as the HL7 validator reads it (dot matches newlines)."""
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error as e:
        raise FhirPathError(f"invalid regular expression '{pattern}': {e}") from e


def fn_resolve(ctx, focus):
    """Contained references ('#id') locally; everything else through the host's resolver."""
    engine = _engine(ctx)
    out = []
    for item in focus:
        data = unwrap(item)
        if isinstance(data, dict):
            reference = data.get("reference")
        elif isinstance(data, str):
            reference = data
        else:
            continue
        if not isinstance(reference, str):
            continue
        if reference.startswith("#"):
            found = _find_contained(ctx, reference[1:])
        else:
            if engine.resolve is None:
                raise NotEvaluable("resolve() needs a reference resolver")
            found = engine.resolve(reference, ctx["host"])
        if found is not None:
            out.append(found if isinstance(found, ResourceNode) else as_resource_node(found))
    return out


def _find_contained(ctx, ident: str):
    for name in ("resource", "rootResource"):
        for holder in ctx["vars"][name]:
            data = unwrap(holder)
            for contained in (data.get("contained") or ()) if isinstance(data, dict) else ():
                if isinstance(contained, dict) and contained.get("id") == ident and ident:
                    return contained
    return None


def fn_member_of(ctx, focus, url):
    engine = _engine(ctx)
    if len(focus) != 1 or not isinstance(url, str):
        return []
    value = unwrap(focus[0])
    if not isinstance(value, (str, dict)):
        return []
    if engine.member_of is None:
        raise NotEvaluable(f"memberOf('{url}') needs a terminology service")
    answer = engine.member_of(value, url)
    if answer is None:
        raise NotEvaluable(f"memberOf('{url}') cannot be decided offline")
    return bool(answer)


def fn_conforms_to(ctx, focus, url):
    engine = _engine(ctx)
    if len(focus) != 1:
        return False
    if engine.conforms_to is None:
        raise NotEvaluable(f"conformsTo('{url}') needs profile validation")
    value = unwrap(focus[0])
    answer = engine.conforms_to(value, url) if isinstance(value, dict) else False
    if answer is None:
        raise NotEvaluable(f"conformsTo('{url}') cannot be decided")
    return bool(answer)


def fn_slice(ctx, focus, url, name):
    """slice(structure, name): the items that match the named slice of a profile (the HL7
    validator's FHIRPath extension, used in profile invariants with %profile)."""
    engine = _engine(ctx)
    if engine.slice_matches is None:
        raise NotEvaluable("slice() needs profile slicing")
    out = []
    for item in focus:
        answer = engine.slice_matches(unwrap(item), url, name)
        if answer is None:
            raise NotEvaluable(f"slice('{url}', '{name}'): no such slice")
        if answer:
            out.append(item)
    return out


def fn_html_checks(ctx, focus):
    """txt-1: the narrative uses only the allowed XHTML elements and attributes."""
    engine = _engine(ctx)
    if len(focus) != 1:
        return []
    value = unwrap(focus[0])
    if not isinstance(value, str):
        return []
    if engine.html_checks is None:
        raise NotEvaluable("htmlChecks() needs an XHTML checker")
    return bool(engine.html_checks(value))


def fn_html_content(ctx, focus):
    """txt-2 as the HL7 validator runs it: the narrative has some non-whitespace content."""
    from fhirpkg.validation.xhtml import has_content

    if len(focus) != 1:
        return False
    value = unwrap(focus[0])
    return isinstance(value, str) and has_content(value)


def fn_low_boundary(ctx, focus, precision=None):
    return boundary_of(ctx, focus, precision, high=False)


def fn_high_boundary(ctx, focus, precision=None):
    return boundary_of(ctx, focus, precision, high=True)


def fn_comparable(ctx, focus, other):
    """Quantities with the same system and comparable units (UCUM by dimension)."""
    if len(focus) != 1 or len(other) != 1:
        return False
    a, b = as_quantity(focus[0]), as_quantity(other[0])
    if a is None or b is None:
        return False
    return units_comparable(a, b)


# comparisons that also understand FHIR Quantity elements
def _compare(op_name):
    base = FP_REGISTRY[op_name]["fn"]
    verdict = _VERDICTS[op_name]

    def compare(ctx, a, b):
        if len(a) > 1 or len(b) > 1:  # before fhirpathpy, whose two-item check assumes a primitive and its shadow
            raise FhirPathError(f"The operator {op_name} needs a single item on each side; found "
                                f"{len(a)} and {len(b)}")
        if len(a) == 1 and len(b) == 1:
            qa, qb = as_quantity(a[0]), as_quantity(b[0])
            if qa is not None and qb is not None:
                return compare_quantities(op_name, qa, qb)
            ta, tb = _temporal(a[0]), _temporal(b[0])
            if isinstance(ta, FP_TimeBase) and isinstance(tb, FP_TimeBase):
                a, b = [ta], [tb]
            order = _instant_order(a[0], b[0])
            if order is not None:
                return verdict(order)
        return base(ctx, a, b)

    return compare


#: The FHIR primitive types whose values fhirpathpy orders as FHIRPath dates, date-times and times.
_TEMPORAL_TYPES = {"date": FP_DateTime, "dateTime": FP_DateTime, "instant": FP_DateTime, "time": FP_Time}


def _temporal(item):
    """A date, dateTime, instant or time element as fhirpathpy's temporal value, else ``item``.

    Our JSON nodes keep a primitive's JSON string (fhirpathpy's own nodes convert it when built,
    which costs on every node): compared as strings, "2023-06-21" <= "2023-06-21T06:20:00Z" was
    true, where FHIRPath (and the HL7 engine, e.g. on R4's per-1) gives empty for values equal up
    to the lesser of two precisions, and date-times in different time zones were misordered."""
    if isinstance(item, ResourceNode) and type(item.data) is str:
        cls = _TEMPORAL_TYPES.get(item.path)
        if cls is not None:
            return FP_TimeBase.check_string(cls, item.data) or item
    return item


_VERDICTS = {"<": lambda c: c < 0, "<=": lambda c: c <= 0, ">": lambda c: c > 0, ">=": lambda c: c >= 0}
#: A dateTime to the second (or finer, to the microsecond) with a time zone: one instant.
_FULL_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")


def _instant_order(a, b) -> int | None:
    """-1, 0 or 1 for two dateTimes that are both full instants (what lowBoundary() and
    highBoundary() give, as in per-1), else None.  fhirpathpy orders these by their
    timestamps, read by dateutil's general parser (about 0.1 ms each, twice per comparison);
    ``datetime.fromisoformat`` reads this one format to the same instant."""
    if type(a) is not FP_DateTime or type(b) is not FP_DateTime:
        return None
    sa, sb = a.asStr, b.asStr
    if not (_FULL_INSTANT.fullmatch(sa) and _FULL_INSTANT.fullmatch(sb)):
        return None
    if not (getattr(a, "_dateTimeMatchData", None) and getattr(b, "_dateTimeMatchData", None)
            and getattr(a, "_precision", None) == getattr(b, "_precision", None)):
        return None  # fhirpathpy reads them otherwise: leave it to fhirpathpy
    try:
        ta, tb = datetime.fromisoformat(sa).timestamp(), datetime.fromisoformat(sb).timestamp()
    except ValueError:
        return None
    return (ta > tb) - (ta < tb)



def op_in(ctx, left, right):
    """``in`` as the HL7 validator evaluates it: every item of the left operand is in the right one
    (FHIRPath asks for one item on the left; the HL7 engine accepts several, and core invariants
    such as pld-3, ``goalId in %context.goal.id`` with goalId 0..*, rely on it)."""
    if not left:
        return []
    if not right:
        return False
    return all(contains_impl(ctx, right, [item]) for item in left)


def op_contains(ctx, left, right):
    """``contains``, with the same leniency: every item of the right operand is in the left one."""
    if not right:
        return []
    if not left:
        return False
    return all(contains_impl(ctx, left, [item]) for item in right)


def fn_is_distinct(ctx, coll):
    """``isDistinct()``: a collection of at most one item is distinct, and strings (all of them
    nodes, or all plain) are distinct as Python strings; fhirpathpy's comparison, which serialises
    every item, runs on the rest.  Most uses are per-element uniqueness invariants (eld-13
    ``type.select(code).isDistinct()``, eld-14, eld-27) on one or no item; sdf-16 on every id."""
    if len(coll) <= 1:
        return [True]
    nodes = sum(isinstance(item, ResourceNode) for item in coll)
    texts = [item.data for item in coll] if nodes == len(coll) else coll if not nodes else None
    if texts is not None and all(type(t) is str for t in texts):  # fhirpathpy compares their JSON texts
        return [len(set(texts)) == len(texts)]
    return FP_REGISTRY["isDistinct"]["fn"](ctx, coll)


#: Items up to which ``|`` compares pairs itself (the comparisons grow with the square).
UNION_PAIRS = 8


def op_union(ctx, left, right):
    """``|`` as fhirpathpy computes it (``distinct()`` of both sides), without its duplicate test
    where it is not needed: that test serialises every item, the whole snapshot and differential
    in sdf-19/sdf-23 ``(snapshot | differential)``.  Items that are pairwise unequal by Python's
    ``==`` (with this reader's values, unequal items never serialise alike) are all kept, as
    fhirpathpy keeps them; anything else is fhirpathpy's to dedupe."""
    items = left + right
    n = len(items)
    if 1 < n <= UNION_PAIRS and all(isinstance(i, ResourceNode) for i in items):
        data = [i.data for i in items]
        if all(data[a] is not data[b] and data[a] != data[b] for a in range(n) for b in range(a + 1, n)):
            return [ResourceNode.create_node(d) for d in data]
    return FP_REGISTRY["|"]["fn"](ctx, left, right)


def _build_registry() -> dict:
    registry = dict(FP_REGISTRY)
    ours = {
        "children": {"fn": fn_children},
        "descendants": {"fn": fn_descendants},
        "extension": {"fn": fn_extension, "arity": {1: ["String"]}},
        "trace": {"fn": fn_trace, "arity": {0: [], 1: ["String"], 2: ["String", "Expr"]}},
        "where": {"fn": fn_where, "arity": {1: ["Expr"]}},
        "ofType": {"fn": fn_of_type, "arity": {1: ["TypeSpecifier"]}},
        "exists": {"fn": fn_exists, "arity": {0: [], 1: ["Expr"]}},
        "repeat": {"fn": fn_repeat, "arity": {1: ["Expr"]}},
        "single": {"fn": fn_single},
        "hasValue": {"fn": fn_has_value},
        "startsWith": {"fn": fn_starts_with, "arity": {1: ["String"]}},
        "endsWith": {"fn": fn_ends_with, "arity": {1: ["String"]}},
        "contains": {"fn": fn_contains, "arity": {1: ["String"]}},
        "matches": {"fn": fn_matches, "arity": {1: ["String"]}},
        "substring": {"fn": fn_substring, "arity": {1: ["Integer"], 2: ["Integer", "Integer"]}},
        "length": {"fn": fn_length},
        "getValue": {"fn": fn_get_value},
        "resolve": {"fn": fn_resolve},
        "memberOf": {"fn": fn_member_of, "arity": {1: ["String"]}},
        "conformsTo": {"fn": fn_conforms_to, "arity": {1: ["String"]}},
        "slice": {"fn": fn_slice, "arity": {2: ["String", "String"]}},
        "htmlChecks": {"fn": fn_html_checks},
        XHTML_CONTENT_FUNCTION: {"fn": fn_html_content},
        "lowBoundary": {"fn": fn_low_boundary, "arity": {0: [], 1: ["Integer"]}},
        "highBoundary": {"fn": fn_high_boundary, "arity": {0: [], 1: ["Integer"]}},
        "comparable": {"fn": fn_comparable, "arity": {1: ["Any"]}},
        "isDistinct": {"fn": fn_is_distinct},
    }
    for op in ("<", "<=", ">", ">="):
        ours[op] = {**FP_REGISTRY[op], "fn": _compare(op)}
    ours["inOp"] = {**FP_REGISTRY["inOp"], "fn": op_in}
    ours["containsOp"] = {**FP_REGISTRY["containsOp"], "fn": op_contains}
    ours["|"] = {**FP_REGISTRY["|"], "fn": op_union}
    registry.update(ours)
    return registry


DEFAULT_REGISTRY = _build_registry()

#: Functions this module adds to fhirpathpy's table (or replaces in it).
ADDED_FUNCTIONS = ("hasValue", "getValue", "resolve", "memberOf", "conformsTo", "slice", "htmlChecks",
                   XHTML_CONTENT_FUNCTION, "lowBoundary", "highBoundary", "comparable")
REPLACED_FUNCTIONS = ("children", "descendants", "extension", "trace", "where", "exists", "repeat", "single", "ofType",
                      "startsWith", "endsWith", "contains", "matches", "substring", "length",
                      "<", "<=", ">", ">=", "inOp", "containsOp", "isDistinct", "|")
