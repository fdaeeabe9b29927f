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

from fhirpkg.validation.fhirpath.common import FhirPathError
from fhirpkg.validation.fhirpath.compiler import unquote_identifier
from fhirpkg.validation.fhirpath.model import TypeModel, member

#: test(model, focus) -> bool, where focus is the one-item collection the expression starts from.
Test = Callable[[TypeModel, list], bool]


def existence_test(tree: dict) -> Test | None:
    """A test equivalent to the parsed expression ``tree``, if it is a boolean combination of
    ``path.exists()``/``path.empty()`` (paths of lower-case element names), else None."""
    test = _boolean(tree)
    if test is None:
        return None

    def guarded(model: TypeModel, focus: list) -> bool:
        try:
            return test(model, focus)
        except FhirPathError:
            raise
        except Exception as e:  # as the compiled form reports a failure inside an evaluation
            raise FhirPathError(f"engine error: {type(e).__name__}: {e}") from e

    return guarded


def _boolean(node: dict) -> Test | None:
    kind = node["type"]
    children = node.get("children") or []
    if kind in ("TermExpression", "ParenthesizedTerm") and len(children) == 1:
        return _boolean(children[0])
    if kind in ("AndExpression", "OrExpression", "ImpliesExpression") and len(children) == 2:
        left, right = _boolean(children[0]), _boolean(children[1])
        if left is None or right is None:
            return None
        op = node["terminalNodeText"][0]
        if op == "and":
            return lambda model, focus: left(model, focus) and right(model, focus)
        if op == "or":
            return lambda model, focus: left(model, focus) or right(model, focus)
        if op == "implies":
            return lambda model, focus: not left(model, focus) or right(model, focus)
        return None
    if kind == "InvocationExpression" and len(children) == 2:
        function = _function_without_parameters(children[1])
        if function == "not":
            inner = _boolean(children[0])
            return None if inner is None else (lambda model, focus: not inner(model, focus))
        if function in ("exists", "empty"):
            path = _path(children[0])
            if path is None:
                return None
            present = _present(tuple(path))
            return present if function == "exists" else (lambda model, focus: not present(model, focus))
    return None


def _present(path: tuple[str, ...]) -> Test:
    def present(model: TypeModel, focus: list) -> bool:
        items = focus
        for name in path:
            items = member(model, items, name)
            if not items:
                return False
        return True

    return present


def _function_without_parameters(node: dict) -> str | None:
    if node["type"] != "FunctionInvocation":
        return None
    functn = node["children"][0]
    if len(functn.get("children") or []) != 1:  # a parameter list follows the name
        return None
    return functn["children"][0]["text"]


def _path(node: dict) -> list[str] | None:
    """``a.b.c`` as names; None for anything else (functions, $this, type names, indexes)."""
    kind = node["type"]
    children = node.get("children") or []
    if kind in ("TermExpression", "InvocationTerm") and len(children) == 1:
        return _path(children[0])
    if kind == "MemberInvocation":
        name = unquote_identifier(children[0]["text"])
        return [name] if name[:1].islower() else None  # Upper case: a type filter
    if kind == "InvocationExpression" and len(children) == 2 and children[1]["type"] == "MemberInvocation":
        head = _path(children[0])
        tail = _path(children[1])
        return None if head is None or tail is None else head + tail
    return None

