"""A profile's fixed and pattern values against its base profile's (the HL7 validator's
StructureDefinitionValidator, for differential elements).

A derived profile cannot loosen or change a value its base fixes: where the base element (found, as
the HL7 validator finds it, by an id equal to the element's path) has a fixed value, the element's
own fixed value must be of the same type (SD_ELEMENT_FIXED_WRONG_TYPE) and equal to it (the fixed
value message with SD_ELEMENT_REASON_DERIVED); where the base has a pattern, the element may only
state a fixed value (SD_ELEMENT_PATTERN_NO_FIXED).  An extension derived from another extension is
the common case: its ``Extension.url`` is already fixed to the base's URL.
"""
from __future__ import annotations

from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.model import Node
from fhirpkg.validation.json_values import brief, json_equal


def _choice(element: dict, prefix: str) -> tuple[str, str, object] | None:
    """(key, type suffix, value) of ``fixed[x]``/``pattern[x]`` in a differential element."""
    for k, v in element.items():
        if k.startswith(prefix) and len(k) > len(prefix) and k[len(prefix)].isupper():
            return k, k[len(prefix):], v
    return None


def check(node: Node, defs, resolver=None) -> Iterator[Issue]:
    sd = node.value
    if not isinstance(sd, dict) or sd.get("derivation") == "specialization":
        return
    base = defs.get(sd["baseDefinition"]) if isinstance(sd.get("baseDefinition"), str) else None
    if base is None or base.derivation != "constraint":
        return  # a core type or resource: its elements fix nothing a profile could contradict
    base_name = f"{base.url}|{base.version}" if base.version else base.url
    diff = sd.get("differential")
    for i, element in enumerate(diff.get("element") or () if isinstance(diff, dict) else ()):
        path = element.get("path") if isinstance(element, dict) else None
        ed = base.by_id.get(path) if isinstance(path, str) else None
        if ed is None or (ed.fixed is None and ed.pattern is None):
            continue
        expr, loc = f"{node.expression}.differential.element[{i}]", node.location + ("differential", "element", i)
        fixed, pattern = _choice(element, "fixed"), _choice(element, "pattern")
        if ed.fixed is not None and fixed is not None:
            key, suffix, value = fixed
            want_type, want = ed.fixed
            if suffix != want_type:
                yield Issue(Severity.ERROR, "invalid", f"The base element has a fixed type of '{want_type}', so this "
                            f"element must have a fixed value of the same type, not '{suffix}'", "derived-value",
                            f"{expr}.{key}", location=loc + (key,))
            elif not json_equal(value, want):
                yield Issue(Severity.ERROR, "invalid", f"Value is '{brief(value)}' but is fixed to '{brief(want)}' in "
                            f"the base profile, because the value must match the fixed value define in '{base_name}'",
                            "derived-value", f"{expr}.{key}", location=loc + (key,))
        elif ed.fixed is None and pattern is not None:
            yield Issue(Severity.ERROR, "invalid", f"The base element has a pattern type of '{ed.pattern[0]}', so this "
                        "element must have a fixed value but it doesn't", "derived-value", f"{expr}.{pattern[0]}",
                        location=loc + (pattern[0],))
