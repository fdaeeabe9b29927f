"""SearchParameter checks, as the HL7 validator's SearchParameterValidator makes them.

* the code should not use '.', '$' or '|', which have meanings in the RESTful API
  (SEARCHPARAMETER_BAD_CHAR, warning; the HL7 text quotes the code);
* a parameter ``derivedFrom`` another: the other must be found (SEARCHPARAMETER_NOTFOUND,
  warning); each base must be one of its bases (or it has base Resource) and the type must be
  its type (SEARCHPARAMETER_BASE_WRONG, _TYPE_WRONG, errors); a different expression must be
  the same once reduced to the union members on this parameter's bases
  (SEARCHPARAMETER_EXP_WRONG, warning);
* a composite parameter has two or more components (SEARCHPARAMETER_MISSING_COMPONENTS, error);
* the expression must name elements that exist on the bases (ED_SEARCH_EXPRESSION_ERROR, error).
  The HL7 validator type-checks the whole FHIRPath expression; here only union members that are
  plain paths (names and dots) are checked, up to the first name that is not found.
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


def _children(defs, nodes: list) -> dict:
    """name -> the elements one step below these elements (choice elements by their name without [x])."""
    out: dict = {}
    for e in nodes:
        kids = list(e.children.values())
        if not kids:
            for code in e.type_codes:
                td = defs.base_type(code)
                if td is not None:
                    kids.extend(td.root.children.values())
        for k in kids:
            names = [k.name]
            if k.is_choice:  # 'value', and (as the HL7 type checker accepts) 'valueQuantity'
                names = [k.name[:-3]] + [k.name[:-3] + c[:1].upper() + c[1:] for c in k.type_codes]
            for name in names:
                out.setdefault(name, []).append(k)
    return out


def _labels(nodes) -> list[str]:
    """The possible types as the HL7 validator lists them: type URLs, element#path for backbones."""
    out = []
    for e in nodes:
        codes = e.type_codes
        if e.children and (not codes or codes[0] in ("BackboneElement", "Element")) and "." in e.path:
            out.append(f"http://hl7.org/fhir/StructureDefinition/{e.path.split('.')[0]}#{e.path}")
        else:
            out.extend(f"http://hl7.org/fhir/StructureDefinition/{c}" for c in (codes or (e.path,)))
    return out


def path_problem(expression: str, bases: list[str], defs) -> str | None:
    """The HL7 validator's message for the first name of a plain-path union member that no
    possible type has (the bases, then each step's types), or None."""
    for member in _union_members(expression) or ():
        if not _SIMPLE.match(member):
            continue
        names, pos = member.split("."), max(expression.find(member), 0)
        if defs.is_resource_type(names[0]) or names[0] in bases:
            td = defs.base_type(names[0])
            nodes = [td.root] if td is not None else []
            pos += len(names[0]) + 1
            names = names[1:]
        else:
            nodes = [td.root for td in map(defs.base_type, bases) if td is not None]
        for name in names:
            if not nodes or any(n.content_reference for n in nodes):
                break  # an unknown base, or a recursive element (Questionnaire.item.item): not followed
            step = _children(defs, nodes).get(name)
            if not step:
                return (f"Error evaluating FHIRPath expression: The name '{name}' is not valid for any of the "
                        f"possible types: [{', '.join(_labels(nodes))}] (@char {pos + 1})")
            nodes, pos = step, pos + len(name) + 1
    return None


def check(node: Node, defs, resolver=None) -> Iterator[Issue]:
    sp = node.value
    if not isinstance(sp, dict) or node.location != node.frame.location:
        return
    expr, loc = node.expression, node.location
    bases = [b for b in sp.get("base") or () if isinstance(b, str)]
    if isinstance(sp.get("expression"), str) and bases:
        problem = path_problem(sp["expression"], bases, defs)
        if problem:
            yield Issue(Severity.ERROR, "invalid", f"Error in search expression '{sp['expression']}': {problem}",
                        "searchparameter-expression", f"{expr}.expression", location=loc + ("expression",))
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
