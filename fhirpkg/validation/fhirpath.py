"""FHIRPath for FHIR R5 invariants: fhirpathpy's parser and functions, our evaluator.

fhirpathpy 2.2.4 parses FHIRPath well and implements most functions, but its
tree-walking evaluator gets FHIR JSON wrong in ways that matter for invariants:

* a primitive's ``_x`` shadow becomes a *separate* item (``birthDate.count()``
  is 2 when the date has an extension), and ``children()``/``descendants()``
  drop ``_x``-only primitive arrays, so ele-1 gives false positives;
* a top-level ``$this`` raises ``KeyError`` (sdf-26);
* ``where()`` evaluates its criteria twice, and lambdas leave ``$this`` changed;
* ``and``/``or``/``implies`` do not short-circuit, so ``x.exists() implies
  y.resolve()`` needs ``resolve`` even when ``x`` is absent;
* ``trace()`` prints to stdout, and the parser swallows syntax errors;
* ``hasValue``, ``getValue``, ``memberOf``, ``htmlChecks``, ``lowBoundary``,
  ``highBoundary``, ``comparable``, ``conformsTo`` and ``resolve`` are missing.

So this module keeps fhirpathpy's ANTLR parser, AST, type model, value classes
(``ResourceNode``, ``FP_DateTime``, ``FP_Quantity``, ``TypeInfo``) and most of its
function table, and replaces the evaluator: each expression is compiled once into
Python closures.  A primitive is one ``ResourceNode(value, type, shadow)``.  A few
functions are replaced as well (``REPLACED_FUNCTIONS``): navigation, ``where``
(once per item), ``repeat`` (tree nodes by identity), ``ofType`` (cached type
hierarchy), comparisons (FHIR Quantity elements), and the string functions, which
follow the HL7 validator's leniency about collections.

Nothing in fhirpathpy is patched (we only set ``TypeInfo.model``, as fhirpathpy's
own ``is``/``as`` do); the internals we rely on are checked at import
(``_check_fhirpathpy``) so a fhirpathpy upgrade fails loudly, not subtly.

Functions that need the outside world (``resolve``, ``memberOf``,
``conformsTo``, ``htmlChecks``) call back into the host; without a callback, or
when the callback cannot tell, they raise ``NotEvaluable`` instead of guessing.
"""
from __future__ import annotations

import atexit
import os
import re
import tempfile
import time
from calendar import monthrange
from datetime import datetime
from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import fhirpathpy
import orjson
from antlr4 import CommonTokenStream, InputStream, ParseTreeWalker
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy.engine import check_boolean_param, check_integer_param, check_number_param, check_string_param
from fhirpathpy.engine import util as fp_util
from fhirpathpy.engine.invocations import invocation_registry as FP_REGISTRY
from fhirpathpy.engine.nodes import FP_DateTime, FP_Quantity, FP_Time, FP_TimeBase, ResourceNode, TypeInfo
from fhirpathpy.models import models as FP_MODELS
from fhirpathpy.parser.ASTPathListener import ASTPathListener
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from fhirpkg.fsutil import cache_root

#: The fhirpathpy release whose internals this module was written against.
FHIRPATHPY_VERSION = "2.2.4"

UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
XHTML_CONTENT_FUNCTION = "htmlChecks2"  # the HL7 validator's name for the txt-2 check

Focus = list  # a FHIRPath collection: ResourceNode, FP_* values or Python literals


class FhirPathError(Exception):
    """An expression that cannot be compiled or evaluated; the message says why."""


class FhirPathSyntaxError(FhirPathError):
    """The expression is not valid FHIRPath."""


class NotEvaluable(FhirPathError):
    """Evaluation needs something we do not have (a callback, a terminology answer, time)."""


class EvaluationTimeout(NotEvaluable):
    """The per-evaluation time budget ran out."""


# --------------------------------------------------------------------------- parsing


class _RaisingErrorListener(ErrorListener):
    """fhirpathpy installs a no-op listener, so parser errors pass silently; ours raises."""

    def syntaxError(self, recognizer, offendingSymbol, line, column, msg, e):  # noqa: N802 (ANTLR API)
        raise FhirPathSyntaxError(f"syntax error at column {column + 1}: {msg}")


_LISTENER = _RaisingErrorListener()


def parse(expression: str) -> dict:
    """Parse with fhirpathpy's grammar, strictly: the whole text must be one expression."""
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(_LISTENER)
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(_LISTENER)
    tree = parser.entireExpression()  # expression EOF: trailing garbage is an error
    listener = ASTPathListener()
    ParseTreeWalker().walk(listener, tree)
    entire = listener.parentStack[0]["children"][0]
    if entire.get("type") != "EntireExpression" or len(entire.get("children", ())) != 1:
        raise FhirPathSyntaxError("syntax error: not a single expression")
    return entire["children"][0]


# --------------------------------------------------------------------------- parse-tree cache

_ASTS: dict[str, dict] = {}
_AST_STATE = {"loaded": False, "dirty": False}
AST_CACHE_ENV = "FHIRPKG_FHIRPATH_CACHE"  # a file path, or "0" to keep parse trees in memory only


def ast_cache_path() -> Path | None:
    """Where parse trees are kept between runs, next to the compiled definitions."""
    env = os.environ.get(AST_CACHE_ENV)
    if env is None:
        return cache_root() / f"fhirpath-ast-{FHIRPATHPY_VERSION}.json"
    if env in ("0", "false", ""):
        return None
    return Path(env).expanduser()


def parse_cached(expression: str) -> dict:
    """``parse``, remembered in memory and across runs (syntax errors are not cached)."""
    found = _ASTS.get(expression)
    if found is None:
        if not _AST_STATE["loaded"]:
            _load_asts()
            found = _ASTS.get(expression)
    if found is None:
        found = _ASTS[expression] = parse(expression)
        if not _AST_STATE["dirty"]:
            _AST_STATE["dirty"] = True
            atexit.register(save_ast_cache)
    return found


def _load_asts() -> None:
    _AST_STATE["loaded"] = True
    path = ast_cache_path()
    if path is None or not path.is_file():
        return
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return  # a damaged cache is ignored and rewritten
    if isinstance(data, dict) and data.get("fhirpathpy") == FHIRPATHPY_VERSION and isinstance(data.get("asts"), dict):
        for expression, ast in data["asts"].items():
            if isinstance(expression, str) and isinstance(ast, dict):
                _ASTS.setdefault(expression, ast)


def save_ast_cache() -> None:
    """Write the parse trees seen so far (atomically); called at exit when there are new ones."""
    path = ast_cache_path()
    if path is None or not _AST_STATE["dirty"]:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".fhirpath-ast-", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps({"fhirpathpy": FHIRPATHPY_VERSION, "asts": _ASTS}))
        os.replace(tmp, path)
        _AST_STATE["dirty"] = False
    except OSError:
        pass  # a cache we cannot write only costs time


# --------------------------------------------------------------------------- the R5 type model


class TypeModel:
    """Child types by element path, from fhirpathpy's R5 model, with inheritance.

    Node paths follow fhirpathpy: a type name ("Quantity", "string", "Patient")
    or, for backbone elements, the element path ("PlanDefinition.action").
    """

    def __init__(self, model: dict):
        self.model = model
        self._path2type: dict = model["path2Type"]
        self._choices: dict = model["choiceTypePaths"]
        self._elsewhere: dict = model["pathsDefinedElsewhere"]
        self._parents: dict = model["type2Parent"]
        self._members: dict = {}
        self._children: dict = {}
        self._lineages: dict = {}
        self._types: dict = {}

    def lineage(self, path: str | None) -> tuple[str, ...]:
        """The path itself, then where inherited elements are defined."""
        found = self._lineages.get(path)
        if found is None:
            found = self._lineages[path] = self._lineage(path)
        return found

    def _lineage(self, path):
        if not path:
            return ()
        if "." in path:
            return (path, "BackboneElement", "Element")
        chain = [path]
        while (path := self._parents.get(path)) is not None and path not in chain:
            chain.append(path)
        return tuple(chain)

    def is_type(self, name: str | None, ancestor: str) -> bool:
        return name is not None and ancestor in self.lineage(name)

    def type_of(self, path: str | None) -> str | None:
        """The FHIR type of an element path, or the path itself for backbone elements."""
        if not path or "." not in path:
            return path
        found = self._types.get(path)
        if found is None:
            parent, _, key = path.rpartition(".")
            found = self._types[path] = self._child_type_of(self.type_of(parent), key) or path
        return found

    def member_keys(self, parent: str | None, name: str) -> tuple[tuple[str, str | None], ...]:
        """JSON keys (with their type) that FHIRPath ``parent.name`` can read.

        A choice element ``value`` yields one key per allowed type (``valueString``...);
        an unknown path yields ``((name, None),)``.
        """
        key = (parent, name)
        found = self._members.get(key)
        if found is None:
            found = self._member_keys(parent, name)
            self._members[key] = found
        return found

    def _member_keys(self, parent, name):
        for base in self.lineage(parent):
            path = f"{base}.{name}"
            choices = self._choices.get(path)
            if choices:
                return tuple((name + t, self._path2type.get(path + t) or _decap(t)) for t in choices)
            if path in self._path2type:
                return ((name, self._path2type[path]),)
            if path in self._elsewhere:
                return ((name, self._elsewhere[path]),)
        return ((name, None),)

    def child_type(self, parent: str | None, key: str) -> str | None:
        """Type of the JSON property ``key`` of a node typed ``parent``."""
        k = (parent, key)
        if k in self._children:
            return self._children[k]
        found = self._child_type_of(parent, key)
        self._children[k] = found
        return found

    def _child_type_of(self, parent, key):
        for base in self.lineage(parent):
            path = f"{base}.{key}"
            if path in self._path2type:
                return self._path2type[path]
            if path in self._elsewhere:
                return self._elsewhere[path]
            if path in self._choices:
                return None
        return None


#: FHIR primitive types: the ones spelled in lower case as a type and capitalised in ``valueX``.
PRIMITIVE_TYPES = frozenset({
    "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id", "instant", "integer",
    "integer64", "markdown", "oid", "positiveInt", "string", "time", "unsignedInt", "uri", "url", "uuid", "xhtml",
})


def choice_type(suffix: str) -> str:
    """The type named by a choice suffix: ``String`` → ``string``, ``CodeableConcept`` stays."""
    lowered = suffix[:1].lower() + suffix[1:]
    return lowered if lowered in PRIMITIVE_TYPES else suffix


_decap = choice_type


QUANTITY_TYPES = frozenset({"Quantity", "Age", "Count", "Distance", "Duration", "MoneyQuantity", "SimpleQuantity"})
_SKIP_KEYS = frozenset({"resourceType", "fhir_comments"})


# --------------------------------------------------------------------------- navigation


class _Node(ResourceNode):
    """fhirpathpy's ResourceNode with a cheaper constructor (no ``abc.Mapping`` check)."""

    def __init__(self, data, path, shadow=None):  # noqa: D107 (same fields as ResourceNode)
        if type(data) is dict and type(data.get("resourceType")) is str:  # a malformed one is not a type
            path = data["resourceType"]
        self.path = path
        self.data = data
        self._data = shadow
        self.propName = None
        self.index = None


def _resource_node(data) -> ResourceNode:
    return _Node(data, None)


def _append(out: list, value, shadow, type_path: str | None) -> None:
    """Add one JSON property as items: value and ``_x`` shadow paired by index."""
    if isinstance(value, list) or isinstance(shadow, list):
        values = value if isinstance(value, list) else ([] if value is None else [value])
        shadows = shadow if isinstance(shadow, list) else ([] if shadow is None else [shadow])
        for i in range(max(len(values), len(shadows))):
            v = values[i] if i < len(values) else None
            s = shadows[i] if i < len(shadows) else None
            if v is not None or isinstance(s, dict):
                out.append(_Node(v, type_path, s if isinstance(s, dict) else None))
    elif value is not None or isinstance(shadow, dict):
        out.append(_Node(value, type_path, shadow if isinstance(shadow, dict) else None))


def member(model: TypeModel, items: Focus, name: str) -> list:
    """``items.name`` over FHIR JSON: choice types, ``_x`` shadows, primitives' id/extension."""
    out: list = []
    for item in items:
        if not isinstance(item, ResourceNode):
            if isinstance(item, FP_Quantity) and name in ("value", "unit"):
                out.append(item.value if name == "value" else item.unit)
            continue
        data = item.data
        if isinstance(data, dict):
            keys = model.member_keys(item.path, name)
            for key, type_path in keys:
                value = data.get(key)
                shadow = data.get("_" + key)
                if value is not None or shadow is not None:
                    if type_path is None:
                        type_path = f"{item.path}.{name}" if item.path else None
                    _append(out, value, shadow, type_path)
                    break
            else:
                if keys[0][1] is None:
                    _append_unknown_choice(out, item, data, name)
        elif item._data is not None and name in ("id", "extension"):
            _append(out, item._data.get(name), None, "System.String" if name == "id" else "Extension")
    return out


def _append_unknown_choice(out: list, item: ResourceNode, data: dict, name: str) -> None:
    """Outside the model (logical models, unknown types) ``value`` still finds ``valueX``."""
    n = len(name)
    for key in data:
        if key.startswith(name) and len(key) > n and key[n].isupper():
            _append(out, data[key], data.get("_" + key), _decap(key[n:]))
            return


def children(model: TypeModel, items: Focus) -> list:
    """``children()``: every property, with ``_x``-only primitives included."""
    out: list = []
    for item in items:
        if not isinstance(item, ResourceNode):
            continue
        data = item.data
        if isinstance(data, dict):
            parent = item.path
            for key, value in data.items():
                if key in _SKIP_KEYS:
                    continue
                if not key:
                    continue  # "" is no FHIR property (the structure check reports it)
                if key[0] == "_":
                    base = key[1:]
                    if base in data:
                        continue  # paired with its value below
                    key, shadow, value = base, value, None
                else:
                    shadow = data.get("_" + key)
                _append(out, value, shadow, model.child_type(parent, key) or (f"{parent}.{key}" if parent else None))
        elif item._data is not None:
            _append(out, item._data.get("id"), None, "System.String")
            _append(out, item._data.get("extension"), None, "Extension")
    return out


def count_children(value: Any, shadow: dict | None) -> tuple[int, int]:
    """(children().count(), id.count()) for one node, without building nodes (native ele-1)."""
    if isinstance(value, dict):
        total = 0
        for key, v in value.items():
            if key in _SKIP_KEYS:
                continue
            if key[0] == "_":
                if key[1:] in value:
                    continue
                total += _items(None, v)
            else:
                total += _items(v, value.get("_" + key))
        return total, 1 if value.get("id") is not None else 0
    if isinstance(shadow, dict):
        ids = 1 if shadow.get("id") is not None else 0
        return ids + _items(shadow.get("extension"), None), ids
    return 0, 0


def _items(value, shadow) -> int:
    if isinstance(value, list) or isinstance(shadow, list):
        values = value if isinstance(value, list) else ([] if value is None else [value])
        shadows = shadow if isinstance(shadow, list) else ([] if shadow is None else [shadow])
        return sum(
            1
            for i in range(max(len(values), len(shadows)))
            if (i < len(values) and values[i] is not None) or (i < len(shadows) and isinstance(shadows[i], dict))
        )
    return 1 if value is not None or isinstance(shadow, dict) else 0


def has_value(value: Any) -> bool:
    """``hasValue()`` of one item, as the HL7 validator computes it.

    A primitive needs an actual value (not just id/extensions; '' has none).  A
    complex element counts as having a value: the validator's ``hasValue`` is
    "has a non-empty string form", which every complex element has.  The FHIRPath
    text says false for non-primitives; following the validator keeps ele-1 and
    ratrng-2 verdicts the same as its.
    """
    if isinstance(value, (dict, list)):
        return True
    return value is not None and value != ""


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


def _unquote_identifier(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "`\"'":
        return text[1:-1]
    return text


class _Compiler:
    """Turns fhirpathpy's AST (dicts) into closures ``fn(ctx, focus) -> list``."""

    def __init__(self, registry: dict):
        self.registry = registry
        self.functions: set[str] = set()

    def compile(self, node: dict) -> _Fn:
        handler = getattr(self, "_" + node["type"], None)
        if handler is None:
            raise FhirPathError(f"unsupported syntax: {node['type']}")
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
        return _lit(_unescape(node["text"][1:-1]))

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
        name = _unquote_identifier(node["children"][0]["children"][0]["text"])

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
        name = _unquote_identifier(node["children"][0]["text"])
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
        functn = node["children"][0]
        name = functn["children"][0]["text"]
        params = functn["children"][1]["children"] if len(functn["children"]) > 1 else []
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
            body = self.compile(node)

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

        def typed(ctx, focus):
            values = body(ctx, ctx["$this"])
            if not values:
                return []
            if len(values) > 1:
                raise FhirPathError(f"expected a single {kind}, got {len(values)} items")
            return check(values[0])

        return typed

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
    check = _PARAM_CHECKS[kind]

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


def _unescape(text: str) -> str:
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


# --------------------------------------------------------------------------- added functions


def _engine(ctx) -> "FhirPathEngine":
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
                    out.append(_Node(ext, "Extension"))
    return out


def fn_trace(ctx, focus, name="", projection=None):
    """No output unless the engine was given a trace callback (fhirpathpy prints)."""
    trace = _engine(ctx).trace
    if trace is not None:
        trace(name, [_unwrap(x) for x in (projection(focus) if projection else focus)])
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
    return len(focus) == 1 and has_value(_unwrap(focus[0]))


def fn_get_value(ctx, focus):
    """The System value of a single primitive; nothing for complex elements or extension-only primitives."""
    if len(focus) == 1:
        data = _unwrap(focus[0])
        if has_value(data) and not isinstance(data, (dict, list)):
            return fp_util.get_data(focus[0])
    return []


# String functions as the HL7 validator runs them: lenient about collections
# (fhirpathpy raises on more than one item, which would leave eld-11 unevaluated).


def _text(item) -> str | None:
    data = _unwrap(item)
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
    return bool(text) and _regex(regex).search(text) is not None


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
def _regex(pattern: str):
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error as e:
        raise FhirPathError(f"invalid regular expression '{pattern}': {e}") from e


def fn_resolve(ctx, focus):
    """Contained references ('#id') locally; everything else through the host's resolver."""
    engine = _engine(ctx)
    out = []
    for item in focus:
        data = _unwrap(item)
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
            out.append(found if isinstance(found, ResourceNode) else _resource_node(found))
    return out


def _find_contained(ctx, ident: str):
    for name in ("resource", "rootResource"):
        for holder in ctx["vars"][name]:
            data = _unwrap(holder)
            for contained in (data.get("contained") or ()) if isinstance(data, dict) else ():
                if isinstance(contained, dict) and contained.get("id") == ident and ident:
                    return contained
    return None


def fn_member_of(ctx, focus, url):
    engine = _engine(ctx)
    if len(focus) != 1 or not isinstance(url, str):
        return []
    value = _unwrap(focus[0])
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
    value = _unwrap(focus[0])
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
        answer = engine.slice_matches(_unwrap(item), url, name)
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
    value = _unwrap(focus[0])
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
    value = _unwrap(focus[0])
    return isinstance(value, str) and has_content(value)


def fn_low_boundary(ctx, focus, precision=None):
    return _boundary(ctx, focus, precision, high=False)


def fn_high_boundary(ctx, focus, precision=None):
    return _boundary(ctx, focus, precision, high=True)


def fn_comparable(ctx, focus, other):
    """Quantities with the same system and comparable units (UCUM by dimension)."""
    if len(focus) != 1 or len(other) != 1:
        return False
    a, b = _quantity(focus[0]), _quantity(other[0])
    if a is None or b is None:
        return False
    return _units_comparable(a, b)


# comparisons that also understand FHIR Quantity elements
def _compare(op_name):
    base = FP_REGISTRY[op_name]["fn"]
    verdict = _VERDICTS[op_name]

    def compare(ctx, a, b):
        if len(a) == 1 and len(b) == 1:
            qa, qb = _quantity(a[0]), _quantity(b[0])
            if qa is not None and qb is not None:
                return _compare_quantities(op_name, qa, qb)
            order = _instant_order(a[0], b[0])
            if order is not None:
                return verdict(order)
        return base(ctx, a, b)

    return compare


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


# --------------------------------------------------------------------------- boundaries


def _boundary(ctx, focus, precision, *, high: bool):
    if not focus:
        return []
    if len(focus) > 1:
        raise FhirPathError(f"{'high' if high else 'low'}Boundary(): {len(focus)} items")
    item = focus[0]
    kind, text = _boundary_input(ctx, item)
    if kind is None or text is None:
        return []
    if isinstance(precision, list):
        precision = None
    if kind in ("decimal", "integer"):
        value = decimal_boundary(text, precision, high=high)
        return [] if value is None else value
    if kind == "Quantity":
        value = decimal_boundary(text, precision, high=high)
        if value is None:
            return []
        quantity = dict(item.data)
        quantity["value"] = value
        quantity.pop("_value", None)
        return _Node(quantity, "Quantity")
    if kind in ("date", "dateTime"):
        value = date_boundary(text, precision if precision is not None else (10 if kind == "date" else 17), high=high)
        return [] if value is None else FP_DateTime(value)
    if kind == "time":
        value = time_boundary(text, precision if precision is not None else 9, high=high)
        return [] if value is None else FP_Time(value)
    return []


def _boundary_input(ctx, item) -> tuple[str | None, str | None]:
    if isinstance(item, FP_DateTime):
        return ("dateTime" if "T" in item.asStr else "date"), item.asStr
    if isinstance(item, FP_Time):
        return "time", item.asStr
    if isinstance(item, ResourceNode):
        data, path = item.data, item.path
        model = ctx["types"]
        if isinstance(data, dict):
            if path in QUANTITY_TYPES or model.is_type(path, "Quantity"):
                value = data.get("value")
                return ("Quantity", _decimal_text(value)) if value is not None else (None, None)
            return None, None
        if path in ("date", "dateTime", "instant", "time") and isinstance(data, str):
            return ("dateTime" if path == "instant" else path), data
        if path in ("decimal",) or isinstance(data, (float, Decimal)):
            return "decimal", _decimal_text(data)
        if isinstance(data, int) and not isinstance(data, bool):
            return "integer", str(data)
        return None, None
    if isinstance(item, bool):
        return None, None
    if isinstance(item, (int, Decimal, float)):
        return ("integer" if isinstance(item, int) else "decimal"), _decimal_text(item)
    return None, None


def _decimal_text(value) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, str):
        return value
    return None


def decimal_boundary(text: str, precision: int | None, *, high: bool) -> Decimal | None:
    """FHIRPath lowBoundary/highBoundary of a decimal: ±half a unit of its last digit.

    ``1.587`` → ``1.58650000`` / ``1.58750000``; a precision outside 0..16 gives
    nothing (as the HL7 validator does).  Zero gives ±0.5 whatever its digits.
    """
    p = 8 if precision is None else int(precision)
    if p < 0 or p > 16:
        return None
    try:
        d = Decimal(text)
    except InvalidOperation:
        return None
    if d.is_zero():
        half = Decimal("0.5")
    else:
        places = max(-d.as_tuple().exponent, 0)
        half = Decimal(5).scaleb(-(places + 1))
    bound = d + half if high else d - half
    return bound.quantize(Decimal(1).scaleb(-p), rounding=ROUND_CEILING if high else ROUND_FLOOR)


_TZ = re.compile(r"(Z|[+-]\d{2}:\d{2})$")


def _split_tz(text: str) -> tuple[str, str]:
    if "T" in text:
        match = _TZ.search(text)
        if match:
            return text[: match.start()], match.group(1)
    return text, ""


def date_boundary(text: str, precision: int, *, high: bool) -> str | None:
    """Earliest/latest instant a date(Time) could mean, as the HL7 validator computes it.

    A missing timezone becomes +14:00 (low) or -12:00 (high), so comparisons of
    values without timezones never claim more than is known.
    """
    body, tz = _split_tz(text)
    if not re.fullmatch(r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?)?)?", body):
        return None
    if len(body) == 4:
        body += "-12" if high else "-01"
    if len(body) == 7:
        year, month = int(body[:4]), int(body[5:7])
        if not 1 <= month <= 12:
            return None
        body += f"-{monthrange(year, month)[1]:02d}" if high else "-01"
    if len(body) == 10:
        body += "T23:59" if high else "T00:00"
    if len(body) == 16:
        body += ":59" if high else ":00"
    if len(body) == 19:
        body += ".999" if high else ".000"
    cut = {4: 4, 6: 7, 7: 7, 8: 10, 10: 10, 14: 17, 17: None}
    if precision not in cut:
        return None
    end = cut[precision]
    if precision <= 10:
        return body[:end]
    zone = tz or ("-12:00" if high else "+14:00")
    return (body if end is None else body[:end]) + zone


def time_boundary(text: str, precision: int, *, high: bool) -> str | None:
    body, tz = _split_tz("T" + text.lstrip("T"))
    body = body[1:]
    if not re.fullmatch(r"\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?", body):
        return None
    if len(body) == 2:
        body += ":59" if high else ":00"
    if len(body) == 5:
        body += ":59" if high else ":00"
    if len(body) == 8:
        body += ".999" if high else ".000"
    cut = {2: 2, 4: 5, 6: 8, 9: None}
    if precision not in cut:
        return None
    end = cut[precision]
    return (body if end is None else body[:end]) + tz


# --------------------------------------------------------------------------- quantities and UCUM


@dataclass(frozen=True, slots=True)
class _Qty:
    value: Decimal | None
    system: str | None
    code: str | None


def _quantity(item) -> _Qty | None:
    if isinstance(item, FP_Quantity):
        unit = (item.unit or "'1'").strip("'")
        code = FP_Quantity.timeUnitsToUCUM.get(unit, f"'{unit}'").strip("'")
        return _Qty(Decimal(str(item.value)), UCUM, code)
    if isinstance(item, ResourceNode) and isinstance(item.data, dict):
        path = item.path
        if path in QUANTITY_TYPES or (TypeInfo.model is not None and _QUANTITY_MODEL.is_type(path, "Quantity")):
            value = item.data.get("value")
            value = Decimal(_decimal_text(value)) if _decimal_text(value) is not None else None
            return _Qty(value, item.data.get("system"), item.data.get("code"))
    return None


def _units_comparable(a: _Qty, b: _Qty) -> bool:
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


def _compare_quantities(op_name: str, a: _Qty, b: _Qty):
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


# --------------------------------------------------------------------------- the engine


def _listed(node) -> list:
    return [] if node is None else [node]


def _unwrap(item):
    return item.data if isinstance(item, ResourceNode) else item


_QUANTITY_MODEL = TypeModel(FP_MODELS["r5"])
_TYPE_MODELS: dict[str, TypeModel] = {"r5": _QUANTITY_MODEL}


def _type_model(name: str) -> TypeModel:
    """One TypeModel per fhirpathpy model, shared by the engines (its caches fill once)."""
    found = _TYPE_MODELS.get(name)
    if found is None:
        found = _TYPE_MODELS[name] = TypeModel(FP_MODELS[name])
    return found


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
    }
    for op in ("<", "<=", ">", ">="):
        ours[op] = {**FP_REGISTRY[op], "fn": _compare(op)}
    registry.update(ours)
    return registry


DEFAULT_REGISTRY = _build_registry()
_SHARED_COMPILED: dict[str, "Compiled"] = {}

#: Functions this module adds to fhirpathpy's table (or replaces in it).
ADDED_FUNCTIONS = ("hasValue", "getValue", "resolve", "memberOf", "conformsTo", "slice", "htmlChecks",
                   XHTML_CONTENT_FUNCTION, "lowBoundary", "highBoundary", "comparable")
REPLACED_FUNCTIONS = ("children", "descendants", "extension", "trace", "where", "exists", "repeat", "single", "ofType",
                      "startsWith", "endsWith", "contains", "matches", "substring", "length",
                      "<", "<=", ">", ">=")


class FhirPathEngine:
    """Compiles and evaluates FHIRPath over FHIR R5 JSON.

    Callbacks (all optional; absent means the function makes the expression not
    evaluable, never silently true):

    * ``resolve(reference, context) -> dict | None`` for references that are not
      ``#contained``; ``context`` is what the caller passed to ``evaluate``;
    * ``member_of(value, valueset_url) -> bool | None`` (None: cannot tell offline);
    * ``conforms_to(resource, profile_url) -> bool | None``;
    * ``slice_matches(value, profile_url, slice_name) -> bool | None`` for slice() (None: no such slice);
    * ``html_checks(div) -> bool`` for txt-1.
    """

    def __init__(self, *, resolve=None, member_of=None, conforms_to=None, html_checks=None,
                 time_budget: float = 2.0, trace: Callable[[str, list], None] | None = None,
                 slice_matches=None, model: str = "r5"):
        self.resolve = resolve
        self.member_of = member_of
        self.conforms_to = conforms_to
        self.slice_matches = slice_matches
        self.html_checks = html_checks
        self.time_budget = time_budget
        self.trace = trace
        #: fhirpathpy's type model: "r5", or "r4" (also used for R4B, which fhirpathpy lacks).
        self.model_name = model if model in FP_MODELS else "r5"
        self.model = _type_model(self.model_name)
        self.registry = DEFAULT_REGISTRY  # copy it before adding functions of your own
        self._compiled: dict[str, Compiled] = {}
        #: Free for layers built on the engine to cache per-engine plans in.
        self.memo: dict = {}
        # fhirpathpy's is/as/ofType read the model from this class attribute.
        TypeInfo.model = FP_MODELS[self.model_name]

    def compile(self, expression: str) -> Compiled:
        """Compile once per expression; raises FhirPathError (syntax, unknown function, arity).

        Compiled forms are shared by every engine with the default function table,
        and parse trees are kept on disk (``ast_cache_path``): ANTLR parsing costs
        1-7 ms an expression, compiling a parse tree a tenth of that.
        """
        found = self._compiled.get(expression)
        if found is None:
            shared = self.registry is DEFAULT_REGISTRY
            found = _SHARED_COMPILED.get(expression) if shared else None
            if found is None:
                compiler = _Compiler(self.registry)
                try:
                    fn = compiler.compile(parse_cached(expression))
                except FhirPathError:
                    raise
                except Exception as e:  # ANTLR recognition errors surface in several shapes
                    raise FhirPathSyntaxError(f"syntax error: {e or type(e).__name__}") from e
                found = Compiled(expression, fn, frozenset(compiler.functions))
                if shared:
                    _SHARED_COMPILED[expression] = found
            self._compiled[expression] = found
        return found

    def evaluate(self, compiled: Compiled | str, node_value, *, type_path: str, resource: dict,
                 root_resource: dict | None = None, context=None, shadow: dict | None = None,
                 variables: dict | None = None) -> list:
        """Evaluate on one node; returns the result collection as plain values.

        ``type_path`` is the node's type ("Period") or backbone element path
        ("PlanDefinition.action"); ``resource``/``root_resource`` are %resource and
        %rootResource; ``shadow`` is a primitive's ``_x`` object; ``context`` is
        handed to the resolve callback (e.g. the ResourceFrame).
        """
        return [_unwrap(x) for x in self.evaluate_nodes(
            compiled, node_value, type_path=type_path, resource=resource, root_resource=root_resource,
            context=context, shadow=shadow, variables=variables)]

    def evaluate_nodes(self, compiled: Compiled | str, node_value, *, type_path: str, resource: dict,
                       root_resource: dict | None = None, context=None, shadow: dict | None = None,
                       variables: dict | None = None) -> list:
        """As ``evaluate``, but items stay ResourceNodes (type and shadow kept)."""
        if isinstance(compiled, str):
            compiled = self.compile(compiled)
        node = _Node(node_value, self.model.type_of(type_path), shadow)
        focus = [node]
        resource_node = root_node = None
        if resource is not None:
            resource_node = node if resource is node_value else _resource_node(resource)
        if root_resource is None or root_resource is resource:
            root_node = resource_node
        else:
            root_node = node if root_resource is node_value else _resource_node(root_resource)
        env = {"context": focus, "resource": _listed(resource_node), "rootResource": _listed(root_node),
               "ucum": UCUM}
        if variables:
            env.update(variables)
        ctx = {
            "$this": focus,
            "vars": env,
            "model": FP_MODELS[self.model_name],  # fhirpathpy's is/as read the raw model dict from here
            "types": self.model,
            "engine": self,
            "host": context if context is not None else resource,
            "deadline": time.perf_counter() + self.time_budget,
        }
        TypeInfo.model = ctx["model"]  # engines of two FHIR versions may share a process
        try:
            return compiled.fn(ctx, focus)
        except FhirPathError:
            raise
        except RecursionError as e:
            raise FhirPathError("engine error: expression too deeply nested") from e
        except Exception as e:
            raise FhirPathError(f"engine error: {type(e).__name__}: {e}") from e


# --------------------------------------------------------------------------- guard


def _check_fhirpathpy() -> None:
    """Fail loudly if fhirpathpy's internals are not the ones this module was written for."""
    problems = []
    if fhirpathpy.__version__ != FHIRPATHPY_VERSION:
        problems.append(f"fhirpathpy {fhirpathpy.__version__} installed, written for {FHIRPATHPY_VERSION}")
    for name in ("where", "select", "all", "iif", "aggregate", "ofType", "is", "isOp", "asOp", "=", "~",
                 "and", "or", "implies", "|", "containsOp", "inOp", "matches", "substring", "isDistinct"):
        if name not in FP_REGISTRY or "fn" not in FP_REGISTRY[name]:
            problems.append(f"invocation_registry lacks {name!r}")
    for op in ("<", "<=", ">", ">=", "and", "or", "implies", "xor", "=", "isOp"):
        if 2 not in FP_REGISTRY.get(op, {}).get("arity", {}):
            problems.append(f"operator {op!r} is not a binary invocation")
    try:
        node = ResourceNode("x", "string", {"id": "a"})
        if (node.data, node.path, node._data) != ("x", "string", {"id": "a"}):
            problems.append("ResourceNode(data, path, _data) changed")
    except TypeError as e:
        problems.append(f"ResourceNode signature changed: {e}")
    for key in ("path2Type", "choiceTypePaths", "pathsDefinedElsewhere", "type2Parent"):
        if key not in FP_MODELS.get("r5", {}):
            problems.append(f"R5 model lacks {key}")
    if not hasattr(FP_TimeBase, "compare") or not hasattr(FP_Quantity, "timeUnitsToUCUM"):
        problems.append("FP_TimeBase/FP_Quantity API changed")
    if problems:
        raise ImportError("fhirpkg.validation.fhirpath: " + "; ".join(problems))


_check_fhirpathpy()

__all__ = [
    "FhirPathEngine", "Compiled", "FhirPathError", "FhirPathSyntaxError", "NotEvaluable", "EvaluationTimeout",
    "TypeModel", "parse", "member", "ucum_values", "children", "count_children", "has_value", "decimal_boundary", "choice_type",
    "PRIMITIVE_TYPES",
    "date_boundary", "time_boundary", "ucum_dimension", "ADDED_FUNCTIONS", "REPLACED_FUNCTIONS",
    "parse_cached", "save_ast_cache", "ast_cache_path", "DEFAULT_REGISTRY",
]
