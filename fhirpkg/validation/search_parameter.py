"""SearchParameter checks, as the HL7 validator's SearchParameterValidator makes them.

* the code should not use '.', '$' or '|', which have meanings in the RESTful API
  (SEARCHPARAMETER_BAD_CHAR, warning; the HL7 text quotes the code);
* a parameter ``derivedFrom`` another: the other must be found (SEARCHPARAMETER_NOTFOUND,
  warning); each base must be one of its bases (or it has base Resource) and the type must be
  its type (SEARCHPARAMETER_BASE_WRONG, _TYPE_WRONG, errors); a different expression must be
  the same once reduced to the union members on this parameter's bases
  (SEARCHPARAMETER_EXP_WRONG, warning);
* a composite parameter has two or more components (SEARCHPARAMETER_MISSING_COMPONENTS, error).

Not made here: type-checking the expression against the bases (ED_SEARCH_EXPRESSION_ERROR).
"""
from __future__ import annotations

import re
from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.model import Node
from fhirpkg.validation import canonical_lookup

_SIMPLE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def _union_members(expression: str) -> list[str] | None:
    """The members of a top-level union ``a | b | (c)``; None when the expression is not one."""
    parts, depth, start, quoted = [], 0, 0, False
    for i, ch in enumerate(expression):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and ch == "|" and depth == 0:
            parts.append(expression[start:i].strip())
            start = i + 1
    parts.append(expression[start:].strip())
    out = []
    for p in parts:
        while p.startswith("(") and p.endswith(")"):
            p = p[1:-1].strip()
        if not p or not re.match(r"^[A-Za-z_]", p):
            return None
        out.append(p)
    return out


def canonical_expression(expression: str, bases: list[str], resource_types) -> str | None:
    """An expression reduced to its union members that start at one of ``bases`` (or at no
    resource type), sorted: two derivations compare equal when these are equal."""
    members = _union_members(expression)
    if members is None:
        return expression
    kept = [m for m in members if m.split(".", 1)[0].split("(", 1)[0] not in resource_types
            or m.split(".", 1)[0] in bases]
    return " | ".join(sorted(kept)) if kept else None


def check(node: Node, defs, resolver=None) -> Iterator[Issue]:
    sp = node.value
    if not isinstance(sp, dict) or node.location != node.frame.location:
        return
    expr, loc = node.expression, node.location
    code = sp.get("code")
    if isinstance(code, str):
        for ch in (".", "$", "|"):
            if ch in code:
                yield Issue(Severity.WARNING, "invalid", f"The Search Parameter code includes '{code}' which has special "
                            "meaning in the RESTful API, and so this will be a problem", "searchparameter-code",
                            expr, location=loc)
    master = sp.get("derivedFrom")
    if isinstance(master, str) and master:
        base_sp = canonical_lookup.find(defs, resolver, master, "SearchParameter")
        if base_sp is None:
            yield Issue(Severity.WARNING, "business-rule", f"Unable to find the base Search Parameter {master} so can't "
                        "check that this SearchParameter is a proper derivation from it", "searchparameter-derivation",
                        expr, location=loc)
        else:
            yield from _derivation(sp, base_sp, master, defs, expr, loc)
    if sp.get("type") == "composite" and len(sp.get("component") or ()) < 2:
        yield Issue(Severity.ERROR, "business-rule", "When the SearchParameter has a type of 'composite', then the "
                    "SearchParameter must define two or more components", "searchparameter-composite",
                    expr, location=loc)


def _derivation(sp: dict, base_sp: dict, master: str, defs, expr: str, loc: tuple) -> Iterator[Issue]:
    base_bases = [b for b in base_sp.get("base") or () if isinstance(b, str)]
    bases = [b for b in sp.get("base") or () if isinstance(b, str)]
    for b in bases:
        if b not in base_bases and "Resource" not in base_bases:
            yield Issue(Severity.ERROR, "business-rule", f"The resource type {b} is not listed as a base in the "
                        f"SearchParameter this is derived from ({master})", "searchparameter-derivation",
                        expr, location=loc)
    if "type" in sp and sp.get("type") != base_sp.get("type"):
        yield Issue(Severity.ERROR, "business-rule", f"The type {base_sp.get('type')} is different to the type "
                    f"{master} in the derivedFrom SearchParameter", "searchparameter-derivation", expr, location=loc)
    mine, theirs = sp.get("expression"), base_sp.get("expression")
    if isinstance(mine, str) and isinstance(theirs, str) and mine != theirs:
        types = set(defs.resource_types)
        if canonical_expression(mine, bases, types) != canonical_expression(theirs, bases, types):
            yield Issue(Severity.WARNING, "business-rule", f"The expression '{mine}' is not compatible with the "
                        f"expression '{theirs}' in the derivedFrom SearchParameter {master}, and this likely indicates "
                        "that the derivation relationship is not valid", "searchparameter-derivation",
                        expr, location=loc)
