"""Existence tests as plain Python: the commonest shape of a FHIR invariant.

Most datatype and resource invariants only ask whether elements are present:
``code.exists().not() implies display.exists().not()`` (cod-1),
``reference.exists() or identifier.exists() or ...`` (ref-2),
``contained.meta.security.empty()`` (dom-5).  Such an expression always yields one
boolean, so ``and``/``or``/``implies``/``not()`` reduce to Python's, and each path is
the same ``member`` navigation the compiled form runs.  Skipping the evaluation
context (variables, deadline, result wrapping) that every compiled evaluation sets up
makes these several times cheaper; the validator's results are the same, which a test
checks on the R5 examples against the compiled form.

``existence_test`` returns None for anything outside that shape; the caller then
evaluates the compiled expression as before.
"""
from __future__ import annotations

from typing import Callable

from fhirpathpy.engine.nodes import ResourceNode

from fhirpkg.validation.fhirpath.common import FhirPathError
from fhirpkg.validation.fhirpath.compiler import function_call, unescape_string, unquote_identifier
from fhirpkg.validation.fhirpath.functions import compile_regex
from fhirpkg.validation.fhirpath.model import TypeModel, member

#: test(model, focus) -> bool, where focus is the one-item collection the expression starts from.
Test = Callable[[TypeModel, list], bool]
#: decide(model, focus) -> True, False, or None when the answer needs the compiled expression.
Decider = Callable[[TypeModel, list], "bool | None"]


def existence_test(tree: dict) -> Test | None:
    """A test equivalent to the parsed expression ``tree``, if it is a boolean combination of
    ``path.exists()``/``path.empty()`` (paths of lower-case element names), else None."""
    decide, complete = _decider(tree)
    return _guarded(decide) if complete else None


def early_decision(tree: dict) -> Decider | None:
    """For an expression that starts with presence tests (``fixed.empty() or (type.count() <= 1)``,
    ``duration.exists() implies duration >= 0``): the answer when those tests settle it, the way
    the compiled form's left-to-right short-circuit would, else None; so the caller evaluates the
    compiled expression only when they do not. None for expressions with no such start."""
    decide, complete = _decider(tree)
    return None if complete or decide is _UNKNOWN else _guarded(decide)


def _guarded(decide):
    def guarded(model: TypeModel, focus: list):
        try:
            return decide(model, focus)
        except FhirPathError:
            raise
        except Exception as e:  # as the compiled form reports a failure inside an evaluation
            raise FhirPathError(f"engine error: {type(e).__name__}: {e}") from e

    return guarded


def _UNKNOWN(model: TypeModel, focus: list) -> None:  # noqa: N802 - a constant: nothing decided
    return None


#: Functions that give an empty collection for an empty input, whatever their parameters:
#: ``slicing.where(...).exists()`` is false when there is no slicing.
_EMPTY_TO_EMPTY = frozenset({"where", "select", "ofType", "first", "last", "tail"})
_FILTER = object()  # a path step through one of those functions


def _decider(node: dict):
    """(decide, complete): complete when every part is a presence test (decide never gives None).
    Operands are decided left to right, as the compiled and/or/implies short-circuit; where the
    left one cannot be decided nothing is (an error it might raise must not be skipped)."""
    kind = node["type"]
    children = node.get("children") or []
    if kind in ("TermExpression", "ParenthesizedTerm") and len(children) == 1:
        return _decider(children[0])
    if kind in ("AndExpression", "OrExpression", "ImpliesExpression") and len(children) == 2:
        op = node["terminalNodeText"][0]
        left, left_complete = _decider(children[0])
        if left is _UNKNOWN or op not in ("and", "or", "implies"):
            return _UNKNOWN, False
        right, right_complete = _decider(children[1])
        # the left value that settles the whole, and the whole's value then:
        # false and _ = false; true or _ = true; false implies _ = true
        settles, result = {"and": (False, False), "or": (True, True), "implies": (False, True)}[op]

        def logic(model: TypeModel, focus: list):
            a = left(model, focus)
            if a is None:
                return None
            if a is settles:
                return result
            return right(model, focus)  # true and b, false or b, true implies b: b

        return logic, left_complete and right_complete
    if kind == "InvocationExpression" and len(children) == 2:
        function = _function_without_parameters(children[1])
        if function == "not":
            inner, complete = _decider(children[0])
            if inner is _UNKNOWN:
                return _UNKNOWN, False
            return (lambda model, focus: None if (v := inner(model, focus)) is None else not v), complete
        if function in ("exists", "empty") and (filtered := _filtered(children[0])) is not None:
            found = _any_item(*filtered)
            if function == "exists":
                return found, False
            return (lambda model, focus: None if (v := found(model, focus)) is None else not v), False
        if function in ("exists", "empty"):
            path = _path(children[0])
            if path is None:
                return _UNKNOWN, False
            present = _present(tuple(path))
            complete = _FILTER not in path
            if function == "exists":
                return present, complete
            return (lambda model, focus: None if (v := present(model, focus)) is None else not v), complete
        if function == "isDistinct":
            values = _values(children[0])
            if values is None:
                return _UNKNOWN, False
            return _distinct(values), False
        string_test = _string_function(children[1])
        if string_test is not None:
            path = _path(children[0])
            if path is None or _FILTER in path:
                return _UNKNOWN, False
            return _on_text(tuple(path), string_test), False
    if kind == "EqualityExpression" and len(children) == 2 and node["terminalNodeText"] in (["="], ["!="]):
        path, literal = _path(children[0]), _string_literal(children[1])
        if path is None or _FILTER in path or literal is None:
            return _UNKNOWN, False
        return _equals(tuple(path), literal, node["terminalNodeText"] == ["!="]), False
    path = _path(node)
    if path is not None and _FILTER not in path:  # a boolean element itself: (... and isModifier)
        return _boolean(tuple(path)), False
    return _UNKNOWN, False


#: FHIR types whose values compare in FHIRPath as the JSON strings do (exactly): an equality or
#: distinctness decided here is one on these only, other types (dates, numbers) are left alone.
_TEXT_TYPES = frozenset({"string", "code", "id", "uri", "url", "canonical", "oid", "uuid", "markdown",
                         "System.String"})


def _text(item) -> str | None:
    """The item's string when it is one of a text type, else None (undecided)."""
    if isinstance(item, ResourceNode) and item.path in _TEXT_TYPES and type(item.data) is str:
        return item.data
    return None


def _equals(path: tuple, literal: str, negated: bool) -> Decider:
    """``path = 'literal'`` (or ``!=``) when the path gives one text value; an empty path (whose
    comparison is empty, not false) and anything else is left to the compiled form."""
    def equals(model: TypeModel, focus: list):
        items = _walk(model, focus, path)
        if len(items) != 1 or (text := _text(items[0])) is None:
            return None
        return (text == literal) is not negated

    return equals


def _walk(model: TypeModel, focus: list, path: tuple) -> list:
    """The items a path of member names gives (no filters in it)."""
    items = focus
    for step in path:
        items = member(model, items, step)
    return items


def _method(node: dict):
    """``head.name(parameters)``: (head node, name, parameter nodes); else None."""
    children = node.get("children") or []
    if node["type"] != "InvocationExpression" or len(children) != 2:
        return None
    call = function_call(children[1])
    return None if call is None else (children[0], *call)


def _filtered(node: dict):
    """``path.where(P)`` or ``path.select(P)`` with a parameter this module can decide:
    (path, function name, decider of P on one item); else None."""
    method = _method(node)
    if method is None or method[1] not in ("where", "select") or len(method[2]) != 1:
        return None
    head = _path(method[0])
    if head is None or _FILTER in head:
        return None
    decide, _ = _decider(method[2][0])
    return None if decide is _UNKNOWN else (tuple(head), method[1], decide)


def _any_item(path: tuple, function: str, decide: Decider) -> Decider:
    """``exists()`` of ``path.where(P)`` / ``path.select(P)``: decided only when P is decided on
    every item (the compiled where/select evaluate P on all of them, and an error on any one must
    not be skipped).  A decided P is one boolean, so select() gives an item for each item."""
    def any_item(model: TypeModel, focus: list):
        items = _walk(model, focus, path)
        found = False
        for item in items:
            value = decide(model, [item])
            if value is None:
                return None
            found = found or function == "select" or value
        return found

    return any_item


def _boolean(path: tuple) -> Decider:
    """A path used as a boolean: decided when it gives one boolean value."""
    def boolean(model: TypeModel, focus: list):
        items = _walk(model, focus, path)
        if len(items) != 1 or not isinstance(items[0], ResourceNode) or items[0].path != "boolean" \
                or type(items[0].data) is not bool:
            return None
        return items[0].data

    return boolean


def _string_function(node: dict):
    """``matches('re')``, ``startsWith('x')``, ``endsWith('x')``, ``contains('x')`` with a string
    literal: a test of one text, as the compiled functions compute it; else None."""
    call = function_call(node)
    if call is None or len(call[1]) != 1:
        return None
    name, literal = call[0], _string_literal(call[1][0])
    if literal is None:
        return None
    if name == "matches":
        if not literal:
            return None
        try:
            regex = compile_regex(literal)
        except FhirPathError:  # reported where the compiled form evaluates it
            return None
        return lambda text: bool(text) and regex.search(text) is not None
    return {"startsWith": lambda text: text.startswith(literal), "endsWith": lambda text: text.endswith(literal),
            "contains": lambda text: literal in text}.get(name)


def _on_text(path: tuple, test) -> Decider:
    def on_text(model: TypeModel, focus: list):
        items = _walk(model, focus, path)
        if len(items) != 1 or (text := _text(items[0])) is None:
            return None
        return test(text)

    return on_text


def _distinct(values: tuple) -> Decider:
    """``path.isDistinct()``, ``path.select(name).isDistinct()``: true for at most one item, and for
    text values compared as strings; anything else is left to the compiled form."""
    def distinct(model: TypeModel, focus: list):
        items = _walk(model, focus, values)
        if len(items) <= 1:
            return True
        texts = [_text(i) for i in items]
        if None in texts:
            return None
        return len(set(texts)) == len(texts)

    return distinct


def _values(node: dict) -> tuple | None:
    """The member names of ``a.b`` or ``a.select(b.c)``: the same items either way."""
    path = _path(node)
    if path is not None and _FILTER not in path:
        return tuple(path)
    method = _method(node)
    if method is None or method[1] != "select" or len(method[2]) != 1:
        return None
    head, inner = _path(method[0]), _path(method[2][0])
    if head is None or inner is None or _FILTER in head or _FILTER in inner:
        return None
    return tuple(head + inner)


def _string_literal(node: dict) -> str | None:
    """A string literal's value, its escapes read as the compiler reads them; else None."""
    while node["type"] in ("TermExpression", "LiteralTerm") and len(node.get("children") or []) == 1:
        node = node["children"][0]
    if node["type"] != "StringLiteral":
        return None
    return unescape_string(node["text"][1:-1])


def _present(path: tuple) -> Decider:
    def present(model: TypeModel, focus: list):
        items = focus
        for step in path:
            if step is _FILTER:
                if items:
                    return None  # the function's parameters would decide
                continue
            items = member(model, items, step)
            if not items:
                return False
        return True

    return present


def _function_without_parameters(node: dict) -> str | None:
    call = function_call(node)
    return call[0] if call is not None and not call[1] else None


def _path(node: dict) -> list | None:
    """``a.b.c`` as names (and ``_FILTER`` for a where/select/... step); None for anything else
    ($this, type names, indexes, other functions)."""
    kind = node["type"]
    children = node.get("children") or []
    if kind in ("TermExpression", "InvocationTerm") and len(children) == 1:
        return _path(children[0])
    if kind == "MemberInvocation":
        name = unquote_identifier(children[0]["text"])
        return [name] if name[:1].islower() else None  # Upper case: a type filter
    if kind == "InvocationExpression" and len(children) == 2:
        head = _path(children[0])
        if head is None:
            return None
        right = children[1]
        if right["type"] == "MemberInvocation":
            tail = _path(right)
            return None if tail is None else head + tail
        if (call := function_call(right)) is not None and call[0] in _EMPTY_TO_EMPTY:
            return head + [_FILTER]
    return None
