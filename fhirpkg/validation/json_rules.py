"""JSON rules FHIR adds to JSON: no nulls, no empty objects, arrays or strings.

(Syntax, encoding, duplicate keys and NaN are found while reading; see jsonsource.)
FHIR JSON uses ``null`` only as a placeholder in a primitive array whose ``_name``
twin has something at that position, so a null is checked against its twin.
"""
from __future__ import annotations

from typing import Iterator

from fhirpkg.issues import Issue, Severity


def check(value, root_expr: str) -> Iterator[Issue]:
    """Yield JSON-rule issues for a parsed resource."""
    stack = [(value, root_expr, ())]
    while stack:
        v, expr, loc = stack.pop()
        if isinstance(v, dict):
            if not v and loc:
                yield Issue(Severity.ERROR, "invalid", "Object must have some content", "json-empty-object",
                            expr, location=loc)
                continue
            for key, child in v.items():
                if child is not None and not isinstance(child, (list, dict)):
                    continue  # a primitive (most properties): nothing to check, no path to make
                cexpr = f"{expr}.{key}" if expr else key
                cloc = loc + (key,)
                if child is None:
                    yield Issue(Severity.ERROR, "invalid", f"The property '{key}' is null: null is not allowed "
                                "in FHIR JSON (omit the property instead)", "json-null", cexpr, location=cloc)
                elif isinstance(child, list):
                    if not child:
                        yield Issue(Severity.ERROR, "invalid", f"The array '{key}' is empty: arrays must have at "
                                    "least one item (omit the property instead)", "json-empty-array", cexpr,
                                    location=cloc)
                        continue
                    twin_key = key[1:] if key.startswith("_") else "_" + key
                    twin = v.get(twin_key)
                    twin = twin if isinstance(twin, list) else []
                    for i, item in enumerate(child):
                        if item is None:
                            if not (i < len(twin) and twin[i] is not None):
                                yield Issue(Severity.ERROR, "invalid",
                                            f"Null item {i} in '{key}': null is only allowed as a placeholder when "
                                            f"'{twin_key}' has a value at the same position", "json-null",
                                            f"{cexpr}[{i}]", location=cloc + (i,))
                        elif isinstance(item, list):
                            yield Issue(Severity.ERROR, "invalid", "Arrays of arrays are not allowed in FHIR JSON",
                                        "json-nested-array", f"{cexpr}[{i}]", location=cloc + (i,))
                        elif isinstance(item, dict):
                            stack.append((item, f"{cexpr}[{i}]", cloc + (i,)))
                elif isinstance(child, dict):
                    stack.append((child, cexpr, cloc))
