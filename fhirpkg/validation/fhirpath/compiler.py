"""fhirpathpy's AST compiled once into Python closures ``fn(ctx, focus) -> list``: literals,
invocations, operators with short-circuit logic, and operand type checks."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

from fhirpathpy.engine import check_boolean_param, check_integer_param, check_number_param, check_string_param
from fhirpathpy.engine import util as fp_util
from fhirpathpy.engine.nodes import FP_DateTime, FP_Quantity, FP_Time, ResourceNode, TypeInfo

from fhirpkg.validation.fhirpath.common import (
    EvaluationTimeout,
    FhirPathError,
    FhirPathSyntaxError,
    LOINC,
    SNOMED,
    UCUM,
)
from fhirpkg.validation.fhirpath.model import member

#: The fhirpathpy release whose internals this module was written against.

# --------------------------------------------------------------------------- compiled form


@dataclass(frozen=True, slots=True)
class Compiled:
    """A compiled expression; ``functions`` lists the functions it calls."""

    expression: str
    fn: Callable[[dict, list], list] = field(repr=False, compare=False)
    functions: frozenset[str] = frozenset()


_Fn = Callable[[dict, list], list]


def _lit(value) -> _Fn:
    result = [value]
    return lambda ctx, focus: list(result)


def function_call(node: dict) -> tuple[str, list] | None:
    """A FunctionInvocation's name and parameter nodes; None for any other node."""
    if node["type"] != "FunctionInvocation":
        return None
    parts = node["children"][0]["children"]
    return parts[0]["text"], (parts[1]["children"] if len(parts) > 1 else [])


def unquote_identifier(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "`\"'":
        return text[1:-1]
    return text


class Compiler:
    """Turns fhirpathpy's AST (dicts) into closures ``fn(ctx, focus) -> list``."""

    def __init__(self, registry: dict):
        self.registry = registry
        self.functions: set[str] = set()
        self._lambdas = 0  # depth of Expr parameters (where/select/all/...) being compiled
        self._hoisting = False  # inside a subexpression already evaluated once per evaluation

    def compile(self, node: dict) -> _Fn:
        handler = getattr(self, "_" + node["type"], None)
        if handler is None:
            raise FhirPathError(f"unsupported syntax: {node['type']}")
        if self._lambdas and not self._hoisting and _worth_hoisting(node) and self._independent(node):
            self._hoisting = True
            try:
                return _once_per_evaluation(handler(node))
            finally:
                self._hoisting = False
        return handler(node)

    # terms -------------------------------------------------------------------------
    def _TermExpression(self, node):
        return self.compile(node["children"][0])

    _InvocationTerm = _TermExpression
    _ParenthesizedTerm = _TermExpression
    _LiteralTerm = _TermExpression

    def _NullLiteral(self, node):
        return lambda ctx, focus: []

    def _BooleanLiteral(self, node):
        return _lit(node["text"] == "true")

    def _StringLiteral(self, node):
        return _lit(unescape_string(node["text"][1:-1]))

    def _NumberLiteral(self, node):
        number = Decimal(node["text"])
        return _lit(int(number) if number == number.to_integral_value() and "." not in node["text"] else number)

    def _DateTimeLiteral(self, node):
        value = FP_DateTime(node["text"][1:])
        if value is None:
            raise FhirPathSyntaxError(f"invalid date/time literal {node['text']}")
        return _lit(value)

    def _TimeLiteral(self, node):
        value = FP_Time(node["text"][2:])
        if value is None:
            raise FhirPathSyntaxError(f"invalid time literal {node['text']}")
        return _lit(value)

    def _QuantityLiteral(self, node):
        quantity = node["children"][0]
        value = Decimal(quantity["terminalNodeText"][0])
        unit = None
        if quantity.get("children"):
            unit_node = quantity["children"][0]
            if unit_node["terminalNodeText"]:
                unit = unit_node["terminalNodeText"][0]
            elif unit_node.get("children"):
                unit = unit_node["children"][0]["terminalNodeText"][0]
        return _lit(FP_Quantity(value, unit))

    def _ExternalConstantTerm(self, node):
        name = unquote_identifier(node["children"][0]["children"][0]["text"])

        def constant(ctx, focus):
            env = ctx["vars"]
            if name in env:
                value = env[name]
            else:
                value = _well_known_constant(name)
                if value is None:
                    raise FhirPathError(f"undefined environment variable %{name}")
            return list(value) if isinstance(value, list) else [value]

        return constant

    def _ThisInvocation(self, node):
        return lambda ctx, focus: list(ctx["$this"])

    def _IndexInvocation(self, node):
        return lambda ctx, focus: fp_util.arraify(ctx.get("$index"))

    def _TotalInvocation(self, node):
        return lambda ctx, focus: fp_util.arraify(ctx.get("$total"))

    # navigation ----------------------------------------------------------------------
    def _InvocationExpression(self, node):
        left, right = node["children"]
        first = self.compile(left)
        then = self.compile(right)
        return lambda ctx, focus: then(ctx, first(ctx, focus))

    def _MemberInvocation(self, node):
        name = unquote_identifier(node["children"][0]["text"])
        if name[:1].isupper():
            # A type name filters (``Patient.name`` on a Patient); otherwise navigate.
            def typed(ctx, focus):
                model = ctx["types"]
                matched = [x for x in focus if model.is_type(_type_name(x), name)]
                return matched if matched else member(model, focus, name)

            return typed
        return lambda ctx, focus: member(ctx["types"], focus, name)

    def _IndexerExpression(self, node):
        coll = self.compile(node["children"][0])
        index = self.compile(node["children"][1])

        def indexer(ctx, focus):
            items = coll(ctx, focus)
            idx = index(ctx, focus)
            if not idx:
                return []
            i = int(fp_util.get_data(idx[0]))
            return [items[i]] if 0 <= i < len(items) else []

        return indexer

    def _PolarityExpression(self, node):
        sign = node["terminalNodeText"][0]
        inner = self.compile(node["children"][0])

        def polarity(ctx, focus):
            values = inner(ctx, focus)
            if len(values) != 1:
                raise FhirPathError(f"unary {sign} needs exactly one number")
            value = fp_util.get_data(values[0])
            if isinstance(value, FP_Quantity):
                return [FP_Quantity(-value.value, value.unit)] if sign == "-" else [value]
            if not fp_util.is_number(value):
                raise FhirPathError(f"unary {sign} needs a number")
            return [-value] if sign == "-" else [value]

        return polarity

    # functions ------------------------------------------------------------------------
    def _FunctionInvocation(self, node):
        name, params = function_call(node)
        spec = self.registry.get(name)
        if spec is None:
            raise FhirPathError(f"unsupported function {name}()")
        self.functions.add(name)
        return self._call(name, spec, params)

    def _call(self, name, spec, params):
        fn = spec["fn"]
        if "variadic" in spec:
            makers = [self._param(spec["variadic"], p) for p in params]
        elif "arity" not in spec:
            if params:
                raise FhirPathError(f"{name}() takes no parameters")
            makers = []
        else:
            if len(params) not in spec["arity"]:
                raise FhirPathError(f"{name}() does not take {len(params)} parameter(s)")
            makers = [self._param(t, p) for t, p in zip(spec["arity"][len(params)], params)]
        nullable_input = "nullable_input" in spec
        nullable = "nullable" in spec

        def call(ctx, focus):
            if nullable_input and not focus:
                return []
            args = [make(ctx, focus) for make in makers]
            if nullable and any(a is None or a == [] for a in args):
                return []
            return fp_util.arraify(fn(ctx, focus, *args))

        return call

    def _param(self, kind, node):
        """A parameter as fhirpathpy's functions expect it, evaluated against ``$this``."""
        if kind == "Expr":
            self._lambdas += 1
            try:
                body = self.compile(node)
            finally:
                self._lambdas -= 1

            def make_lambda(ctx, focus):
                def run(item):
                    previous = ctx["$this"]
                    this = item if isinstance(item, list) else [item]
                    ctx["$this"] = this
                    if time.perf_counter() > ctx["deadline"]:
                        raise EvaluationTimeout("time budget exceeded")
                    try:
                        return body(ctx, this)
                    finally:
                        ctx["$this"] = previous

                return run

            return make_lambda
        if kind == "Identifier":
            text = node["text"]
            return lambda ctx, focus: text
        if kind == "TypeSpecifier":
            type_info = _type_specifier(node["text"])
            return lambda ctx, focus: type_info
        body = self.compile(node)
        if kind in ("Any", "AnyAtRoot"):
            return lambda ctx, focus: body(ctx, ctx["$this"])
        check = _PARAM_CHECKS.get(kind[0] if isinstance(kind, list) else kind)
        if check is None:
            raise FhirPathError(f"unsupported parameter type {kind}")

        single = _single(kind, check)
        return lambda ctx, focus: single(body(ctx, ctx["$this"]))

    def _independent(self, node: dict) -> bool:
        """Whether the subexpression's items depend on nothing that changes within one evaluation:
        not on the focus, $this, $index or $total (see ``_once_per_evaluation``)."""
        kind = node["type"]
        children = node.get("children") or []
        if kind in ("TermExpression", "ParenthesizedTerm", "LiteralTerm") and len(children) == 1:
            return self._independent(children[0])
        if kind.endswith("Literal") or kind == "ExternalConstantTerm":
            return True
        if kind in _OPERATORS and len(children) == 2:
            return self._independent(children[0]) and self._independent(children[1])
        if kind != "InvocationExpression" or len(children) != 2 or not self._independent(children[0]):
            return False
        right = children[1]
        if right["type"] == "MemberInvocation":
            return True
        if right["type"] != "FunctionInvocation":
            return False
        # an Expr parameter (where, select, all ...) is evaluated on the function's own input; any
        # other is evaluated on $this, so it must be independent too.  trace() logs: never hoisted.
        name, params = function_call(right)
        spec = self.registry.get(name)
        if spec is None or name in _NOT_HOISTED:
            return False
        kinds = spec.get("arity", {}).get(len(params), ())
        return all((kinds[i] if i < len(kinds) else None) == "Expr" or self._independent(p)
                   for i, p in enumerate(params))

    # operators --------------------------------------------------------------------------
    def _binary(self, op, node):
        spec = self.registry.get(op)
        if spec is None:
            raise FhirPathError(f"unsupported operator {op}")
        left = self.compile(node["children"][0])
        right_node = node["children"][1]
        fn = spec["fn"]
        kinds = spec["arity"][2]
        if kinds[1] == "TypeSpecifier":
            type_info = _type_specifier(right_node["text"])
            return lambda ctx, focus: fp_util.arraify(fn(ctx, left(ctx, focus), type_info))
        right = self.compile(right_node)
        if op in _LOGIC:
            return _logic(op, fn, left, right)
        nullable = "nullable" in spec
        convert = [_operand(k) for k in kinds]

        def binary(ctx, focus):
            a = convert[0](left(ctx, focus))
            b = convert[1](right(ctx, focus))
            if nullable and (a == [] or b == []):
                return []
            return fp_util.arraify(fn(ctx, a, b))

        return binary

    def _op(self, node):
        return self._binary(node["terminalNodeText"][0], node)

    _InequalityExpression = _op
    _AdditiveExpression = _op
    _MultiplicativeExpression = _op
    _EqualityExpression = _op
    _OrExpression = _op
    _AndExpression = _op
    _ImpliesExpression = _op
    _XorExpression = _op

    def _UnionExpression(self, node):
        return self._binary("|", node)

    def _MembershipExpression(self, node):
        return self._binary({"contains": "containsOp", "in": "inOp"}[node["terminalNodeText"][0]], node)

    def _TypeExpression(self, node):
        return self._binary({"is": "isOp", "as": "asOp"}[node["terminalNodeText"][0]], node)


_LOGIC = frozenset({"and", "or", "implies", "xor"})

# --------------------------------------------------------------------------- hoisting
# Inside where/select/all(...) a subexpression that starts from a literal or an environment
# variable (%resource, %context, %ucum ...) gives the same items for every item the function
# visits: sdf-8 ``element.tail().all(path.startsWith(%resource.snapshot.element.first().path&'.'))``
# walked all n elements once per element.  Such a subexpression is evaluated once per evaluation.

#: Functions whose result is not a function of their input and parameters alone (trace() logs).
_NOT_HOISTED = frozenset({"trace"})
_OPERATORS = frozenset({"InequalityExpression", "AdditiveExpression", "MultiplicativeExpression",
                        "EqualityExpression", "OrExpression", "AndExpression", "ImpliesExpression",
                        "XorExpression", "UnionExpression", "MembershipExpression"})


def _worth_hoisting(node: dict) -> bool:
    """A navigation or operator: a literal or a bare %variable costs less than a lookup."""
    while node["type"] in ("TermExpression", "ParenthesizedTerm") and len(node.get("children") or []) == 1:
        node = node["children"][0]
    return node["type"] == "InvocationExpression" or node["type"] in _OPERATORS


def _once_per_evaluation(fn: _Fn) -> _Fn:
    key = object()

    def once(ctx, focus):
        memo = ctx.get("once")
        if memo is None:
            memo = ctx["once"] = {}
        items = memo.get(key)
        if items is None:
            items = memo[key] = fn(ctx, focus)
        return list(items)

    return once


def _logic(op, fn, left, right):
    """and/or/implies short-circuit, as the HL7 validator does (xor cannot)."""

    def logic(ctx, focus):
        a = _as_boolean(left(ctx, focus))
        if (op == "and" and a is False) or (op == "or" and a is True):
            return [a]
        if op == "implies" and a is False:
            return [True]
        b = _as_boolean(right(ctx, focus))
        return fp_util.arraify(fn(ctx, a, b))

    return logic


def _as_boolean(values: list):
    """Singleton evaluation of collections: [] stays [], one non-boolean item is true."""
    if not values:
        return []
    if len(values) > 1:
        raise FhirPathError(f"expected a single boolean, got {len(values)} items")
    value = fp_util.get_data(values[0])
    return value if isinstance(value, bool) else True


def _operand(kind):
    if kind == "Any":
        return lambda values: values
    if isinstance(kind, list):
        return _as_boolean
    return _single(kind, _PARAM_CHECKS[kind])


def _single(kind, check):
    """An argument or operand: empty stays empty, one item is checked for its type, more is an error."""

    def typed(values):
        if not values:
            return []
        if len(values) > 1:
            raise FhirPathError(f"expected a single {kind}, got {len(values)} items")
        return check(values[0])

    return typed


def _checked(kind: str, check):
    """fhirpathpy's operand checks raise a bare Exception whose message json-dumps the value, which
    itself fails on a decimal: a wrong operand type becomes one FhirPathError naming the kind."""

    def run(value):
        try:
            return check(value)
        except Exception as e:
            data = fp_util.get_data(value)
            got = ("Boolean" if isinstance(data, bool) else "Integer" if isinstance(data, int)
                   else "Decimal" if isinstance(data, (float, Decimal)) else "String" if isinstance(data, str)
                   else "an element")
            raise FhirPathError(f"expected a {kind}, got {got} {str(data)[:40]!r}") from e

    return run


_PARAM_CHECKS = {kind: _checked(kind, check) for kind, check in (
    ("Integer", check_integer_param),
    ("Number", check_number_param),
    ("Boolean", check_boolean_param),
    ("String", check_string_param),
)}


def unescape_string(text: str) -> str:
    """A string literal's text (between its quotes) with FHIRPath's escapes read."""
    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", _unescape_one, text)


def _unescape_one(match) -> str:
    s = match.group(1)
    if s[0] == "u" and len(s) == 5:
        return chr(int(s[1:], 16))
    return {"n": "\n", "r": "\r", "t": "\t", "f": "\f"}.get(s, s)


def _type_specifier(text: str) -> TypeInfo:
    parts = text.replace("`", "").split(".")
    if len(parts) == 2:
        return TypeInfo(name=parts[1], namespace=parts[0])
    return TypeInfo(name=parts[-1], namespace=None)


def _well_known_constant(name: str):
    """%sct, %loinc, %`vs-x`, %`ext-x` (FHIR's additions to FHIRPath's environment)."""
    if name == "sct":
        return SNOMED
    if name == "loinc":
        return LOINC
    if name == "ucum":
        return UCUM
    if name.startswith("vs-"):
        return "http://hl7.org/fhir/ValueSet/" + name[3:]
    if name.startswith("ext-"):
        return "http://hl7.org/fhir/StructureDefinition/" + name[4:]
    return None


def _type_name(item) -> str | None:
    if isinstance(item, ResourceNode):
        if isinstance(item.data, dict) and isinstance(item.data.get("resourceType"), str):
            return item.data["resourceType"]
        return item.path
    return None
