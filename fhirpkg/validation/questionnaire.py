"""Questionnaire derivation: a questionnaire that ``extends`` or ``compliesWith`` another
(``derivedFrom`` with the questionnaire-derivationType extension) keeps what the base fixes.

The rules and their wording are the HL7 validator's (QUESTIONNAIRE_Q_* messages): an item's
type cannot change, a non-repeating item cannot repeat, a required item stays required,
maxLength cannot grow, answer options cannot be added; under ``compliesWith`` every item must
exist in the base.  The base is found among the resources the resolver knows (a package's own,
or supporting resources given to the run); an unknown base is a warning.
"""
from __future__ import annotations

from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.model import Node

DERIVATION_EXT = "http://hl7.org/fhir/StructureDefinition/questionnaire-derivationType"
DERIVATION_SYSTEM = "http://hl7.org/fhir/questionnaire-derivationType"


def _items(items, location: tuple, expression: str):
    for i, item in enumerate(items if isinstance(items, list) else ()):
        if isinstance(item, dict):
            loc, expr = location + ("item", i), f"{expression}.item[{i}]"
            yield item, loc, expr
            yield from _items(item.get("item"), loc, expr)


def _find(items, link_id: str) -> dict | None:
    for item, _, _ in _items(items, (), ""):
        if item.get("linkId") == link_id:
            return item
    return None


def _derivations(node: Node, resolver) -> Iterator[Issue | tuple[dict, str]]:
    """Issues about the derivedFrom declarations, and (base questionnaire, mode) pairs to check against."""
    q = node.value
    for i, url in enumerate(q.get("derivedFrom") or ()):
        if not isinstance(url, str):
            continue
        expr, loc = f"{node.expression}.derivedFrom[{i}]", node.location + ("derivedFrom", i)
        base = resolver.by_canonical.get(url) if resolver is not None else None
        if not isinstance(base, dict) or base.get("resourceType") != "Questionnaire":
            yield Issue(Severity.WARNING, "business-rule", f"The questionnaire '{url}' referred to in the derivation "
                        "could not be found", "questionnaire-derivation", expr, location=loc)
            continue
        shadows = q.get("_derivedFrom")
        shadow = shadows[i] if isinstance(shadows, list) and i < len(shadows) else None
        ext = next((e for e in (shadow or {}).get("extension") or () if isinstance(e, dict)
                    and e.get("url") == DERIVATION_EXT), None)
        if ext is None:
            yield Issue(Severity.WARNING, "business-rule", f"The questionnaire '{url}' has no derivation type specified "
                        f"using the '{DERIVATION_EXT}' extension, so derivation has not been checked",
                        "questionnaire-derivation", expr, location=loc)
            continue
        coding = ext.get("valueCoding")
        if not isinstance(coding, dict):
            yield Issue(Severity.WARNING, "business-rule", "The derivation extension has no value",
                        "questionnaire-derivation", expr, location=loc)
            continue
        system, code = coding.get("system"), coding.get("code")
        if system == DERIVATION_SYSTEM and code in ("extends", "compliesWith"):
            yield base, code
        elif system == DERIVATION_SYSTEM and code == "inspiredBy":
            yield Issue(Severity.INFORMATION, "business-rule", f"The derivation type '{system}#{code}' means that no "
                        "derivation checking has been performed against this questionnaire",
                        "questionnaire-derivation", expr, location=loc)
        else:
            yield Issue(Severity.WARNING, "business-rule", f"The derivation type '{system}#{code}' is unknown, which "
                        "means that no derivation checking has been performed against this questionnaire",
                        "questionnaire-derivation", expr, location=loc)


def _answer_value(option: dict):
    for key, value in option.items():
        if key.startswith("value"):
            if key == "valueCoding" and isinstance(value, dict):
                return key, (value.get("system"), value.get("code"))
            if key == "valueReference" and isinstance(value, dict):
                return key, value.get("reference")
            return key, value
    return None, None


def _item_issues(item: dict, expr: str, loc: tuple, base: dict, mode: str) -> Iterator[Issue]:
    url, link_id = base.get("url"), item.get("linkId")
    bi = _find(base.get("item"), link_id) if isinstance(link_id, str) else None

    def err(message: str, where: str = "", key=None) -> Issue:
        return Issue(Severity.ERROR, "business-rule", f"The item with linkId '{link_id}' found in questionnaire "
                     f"'{url}' {message}", "questionnaire-derivation", expr + (f".{where}" if where else ""),
                     location=loc + ((key,) if key is not None else ()))

    if bi is None:
        if mode == "compliesWith":
            yield Issue(Severity.ERROR, "not-found", f"No item with linkId '{link_id}' found in questionnaire '{url}'",
                        "questionnaire-derivation", expr, location=loc)
        return
    if "type" in bi and "type" in item and item["type"] != bi["type"]:
        yield err(f"has the type '{bi['type']}', and this cannot change to '{item['type']}'", "type", "type")
    if bi.get("repeats") is not True and item.get("repeats") is True:
        yield err("does not repeat, so it cannot repeat here", "repeats", "repeats")
    if bi.get("required") is True and "required" in item and item["required"] is not True:
        yield err("is required, so it must be required here", "required", "required")
    if isinstance(bi.get("maxLength"), int):
        if "maxLength" not in item:
            yield err(f"has the definition '{bi['maxLength']}', so this item must also have a max length")
        elif isinstance(item["maxLength"], int) and item["maxLength"] > bi["maxLength"]:
            yield err(f"has the maxLength of '{bi['maxLength']}', so the max length cannot be greater than that",
                      "maxLength", "maxLength")
    if bi.get("answerOption"):
        if "answerValueSet" in item:
            yield err("has answerOption, while this has answerValueSet. This might be valid, but the vaidator can't "
                      "check that (yet?)")
        elif not item.get("answerOption"):
            yield err("has answerOptions, so this item must have some too")
        else:
            known = {_answer_value(o) for o in bi["answerOption"] if isinstance(o, dict)}
            for i, option in enumerate(item["answerOption"]):
                value = _answer_value(option) if isinstance(option, dict) else (None, None)
                if value[0] is not None and value not in known:
                    yield Issue(Severity.ERROR, "business-rule", f"The item with linkId '{link_id}' found in "
                                f"questionnaire '{url}' does not have this answerOption, so it is not valid",
                                "questionnaire-derivation", f"{expr}.answerOption[{i}]",
                                location=loc + ("answerOption", i))


def derivation(node: Node, defs, resolver) -> Iterator[Issue]:
    """Check a Questionnaire against the questionnaires it extends or complies with."""
    q = node.value
    if not isinstance(q, dict) or not q.get("derivedFrom"):
        return
    bases = []
    for found in _derivations(node, resolver):
        if isinstance(found, Issue):
            yield found
        else:
            bases.append(found)
    for item, loc, expr in _items(q.get("item"), node.location, node.expression):
        for base, mode in bases:
            yield from _item_issues(item, expr, loc, base, mode)
