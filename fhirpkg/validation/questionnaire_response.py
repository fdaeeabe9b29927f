"""A QuestionnaireResponse checked against its Questionnaire (FHIR R4/R4B/R5 questionnaireresponse.html).

The HL7 validator does this whenever the Questionnaire can be found; so do we, with the
Questionnaires the resolver knows (the package's own, or supporting resources).  Checked: linkIds
exist, answers only on questions, the answer type fits the item type, repeats, required items
(when the response is completed and the item has no enableWhen), answerOption membership, and the
constraining extensions minOccurs/maxOccurs, maxLength/minLength, regex, minValue/maxValue,
maxDecimalPlaces, mimeType and maxSize.  enableWhen logic and answerValueSet expansion are not
evaluated.
"""
from __future__ import annotations

import re
from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.jsonsource import lexeme
from fhirpkg.validation.fhirpath import ucum_values

SD = "http://hl7.org/fhir/StructureDefinition/"
EXT_MIN_OCCURS, EXT_MAX_OCCURS = SD + "questionnaire-minOccurs", SD + "questionnaire-maxOccurs"
EXT_MIN_LENGTH, EXT_REGEX = SD + "minLength", SD + "regex"
EXT_MIN_VALUE, EXT_MAX_VALUE = SD + "minValue", SD + "maxValue"
EXT_DECIMALS, EXT_MIME, EXT_MAX_SIZE = SD + "maxDecimalPlaces", SD + "mimeType", SD + "maxSize"
EXT_UNIT_OPTION, EXT_REF_RESOURCE = SD + "questionnaire-unitOption", SD + "questionnaire-referenceResource"
EXT_EXCLUSIVE = SD + "questionnaire-optionExclusive"
SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
EXT_MIN_QUANTITY, EXT_MAX_QUANTITY = SDC + "sdc-questionnaire-minQuantity", SDC + "sdc-questionnaire-maxQuantity"
UCUM = "http://unitsofmeasure.org"

#: Item type -> the answer value[x] types allowed (R4 and R5 item types).
ANSWER_TYPES = {
    "boolean": ("Boolean",), "decimal": ("Decimal",), "integer": ("Integer",), "date": ("Date",),
    "dateTime": ("DateTime",), "time": ("Time",), "string": ("String",), "text": ("String",),
    "url": ("Uri",), "choice": ("Coding", "String"), "open-choice": ("Coding", "String"),
    "attachment": ("Attachment",), "reference": ("Reference",), "quantity": ("Quantity",),
    "coding": ("Coding",),
}
NO_ANSWER_TYPES = {"group", "display", "question"}  # R4 "question" is abstract: never answered


def _ext(item: dict, url: str):
    for e in item.get("extension") or ():
        if isinstance(e, dict) and e.get("url") == url:
            return next((v for k, v in e.items() if k.startswith("value")), None)
    return None


def _answer_value(answer: dict) -> tuple[str | None, object]:
    for k, v in answer.items():
        if k.startswith("value") and len(k) > 5 and k[5].isupper():
            return k[5:], v
    return None, None


def find_questionnaire(qr: dict, resolver, canonicals: dict | None = None) -> tuple[dict | None, str | None]:
    """(the Questionnaire, or None; a problem with the reference, or None).  ``canonicals`` (the
    loaded packages' index: url -> entries with ``resource_type``) tells a wrong-type canonical."""
    url = qr.get("questionnaire")
    if not isinstance(url, str):
        return None, None
    bare = url.split("|", 1)[0]
    found = (resolver.by_canonical.get(url) or resolver.by_canonical.get(bare)) if resolver is not None else None
    found_type = found.get("resourceType") if found is not None else None
    if found is None and canonicals:
        entries = canonicals.get(bare) or ()
        found_type = entries[0].resource_type if entries else None
    if found_type is not None and found_type != "Questionnaire":
        return None, (f"Canonical URL '{url}' refers to a resource that has the wrong type. "
                      f"Found {found_type} expecting Questionnaire")
    return found, None


def check(qr: dict, resolver, expression: str, location: tuple, canonicals: dict | None = None) -> Iterator[Issue]:
    """Issues for a QuestionnaireResponse whose Questionnaire the resolver can find."""
    q, problem = find_questionnaire(qr, resolver, canonicals)
    if problem:
        yield _err(problem, f"{expression}.questionnaire", location + ("questionnaire",), "qr-questionnaire-type")
    if q is None:
        return
    completed = qr.get("status") == "completed"
    yield from _items(qr.get("item") or [], q.get("item") or [], completed, expression, location, ("item",))


def _err(message: str, expression: str, location: tuple, rule: str) -> Issue:
    return Issue(Severity.ERROR, "structure", message, rule, expression, location=location)


def _items(answers: list, defs: list, completed: bool, expr: str, loc: tuple, key: tuple) -> Iterator[Issue]:
    by_link = {d.get("linkId"): d for d in defs if isinstance(d, dict)}
    seen: dict[str, int] = {}
    for i, item in enumerate(answers):
        if not isinstance(item, dict):
            continue
        here, hloc = f"{expr}.{key[-1]}[{i}]", loc + key + (i,)
        link = item.get("linkId")
        d = by_link.get(link)
        if d is None:
            yield _err(f"LinkId '{link}' not found in questionnaire", here, hloc, "qr-linkid")
            continue
        seen[link] = seen.get(link, 0) + 1
        if seen[link] == 2 and not d.get("repeats"):
            yield _err("Only one response item with this linkId allowed", here, hloc, "qr-repeats")
        yield from _item(item, d, completed, here, hloc)
    for d in defs:
        if not isinstance(d, dict) or d.get("linkId") in seen:
            continue
        min_occurs = _ext(d, EXT_MIN_OCCURS)
        if completed and not d.get("enableWhen") and (d.get("required") or (isinstance(min_occurs, int) and min_occurs > 0)):
            what = "group" if d.get("type") == "group" else "item"
            yield _err(f"No response answer found for required {what} '{d.get('linkId')}'", expr, loc, "qr-required")


def _item(item: dict, d: dict, completed: bool, expr: str, loc: tuple) -> Iterator[Issue]:
    itype = d.get("type")
    answers = [a for a in item.get("answer") or () if isinstance(a, dict)]
    if itype in NO_ANSWER_TYPES:
        if answers:
            yield _err(f"Items of type '{itype}' cannot have answers", expr, loc, "qr-answer-not-allowed")
        if itype == "group":
            if completed and d.get("required") and not item.get("item"):
                yield _err("No sub-items found for required group", expr, loc, "qr-required")
            yield from _items(item.get("item") or [], d.get("item") or [], completed, expr, loc, ("item",))
        return
    if len(answers) > 1 and not d.get("repeats"):
        yield _err("Only one response answer item with this linkId allowed", expr, loc, "qr-repeats")
    min_occurs, max_occurs = _ext(d, EXT_MIN_OCCURS), _ext(d, EXT_MAX_OCCURS)
    if isinstance(max_occurs, int) and len(answers) > max_occurs:
        yield _err(f"The maximum number of answers is {max_occurs} but this has {len(answers)} answers",
                   expr, loc, "qr-max-occurs")
    if completed and isinstance(min_occurs, int) and len(answers) < min_occurs:
        yield _err(f"The minimum number of answers is {min_occurs} but this has {len(answers)} answers",
                   expr, loc, "qr-min-occurs")
    if completed and d.get("required") and not d.get("enableWhen") and not answers:
        yield _err(f"No response answer found for required item '{d.get('linkId')}'", expr, loc, "qr-required")
    allowed = ANSWER_TYPES.get(itype)
    exclusive = {_option_key(*_answer_value(o)) for o in d.get("answerOption") or ()
                 if isinstance(o, dict) and _ext(o, EXT_EXCLUSIVE) is True}
    for j, ans in enumerate(answers):
        aexpr, aloc = f"{expr}.answer[{j}]", loc + ("answer", j)
        vtype, value = _answer_value(ans)
        if vtype is not None and allowed is not None and vtype not in allowed:
            yield _err(f"Answer value must be of the type {itype if itype != 'url' else 'uri'} not "
                       f"{vtype[0].lower() + vtype[1:]}", aexpr, aloc, "qr-answer-type")
            continue
        if vtype is not None:
            yield from _value(vtype, value, d, aexpr, aloc)
            if len(answers) > 1 and _option_key(vtype, value) in exclusive:
                yield _err("Selected answer is an exclusive option - can't select anything else at the same time",
                           aexpr, aloc, "qr-exclusive")
        # answers to a question can hold the question's child items
        if ans.get("item"):
            yield from _items(ans["item"], d.get("item") or [], completed, aexpr, aloc, ("item",))
    if item.get("item") and d.get("item"):
        yield from _items(item["item"], d["item"], completed, expr, loc, ("item",))


def _option_key(vtype: str, value):
    if vtype == "Coding" and isinstance(value, dict):
        return ("Coding", value.get("system"), value.get("code"))
    if isinstance(value, (dict, list)):  # Reference, Quantity, ...: compared as written
        return (vtype, repr(value))
    return (vtype, lexeme(value) if not isinstance(value, (str, bool)) else value)


def _value(vtype: str, value, d: dict, expr: str, loc: tuple) -> Iterator[Issue]:
    options = [o for o in d.get("answerOption") or () if isinstance(o, dict)]
    if options and not (d.get("type") == "open-choice" and vtype == "String"):
        keys = {_option_key(*_answer_value(o)) for o in options}
        if _option_key(vtype, value) not in keys:
            shown = f"{value.get('system')}::{value.get('code')}" if isinstance(value, dict) else value
            yield _err(f"The value {shown} is not in the set of permitted values", expr, loc, "qr-answer-option")
    if vtype == "String" and isinstance(value, str):
        max_len, min_len, rx = d.get("maxLength"), _ext(d, EXT_MIN_LENGTH), _ext(d, EXT_REGEX)
        if isinstance(max_len, int) and len(value) > max_len:
            yield _err(f"The answer '{value}' is longer than the maximum length of {max_len}", expr, loc, "qr-length")
        if isinstance(min_len, int) and len(value) < min_len:
            yield _err(f"The answer '{value}' is shorter than the required minimum length of {min_len}",
                       expr, loc, "qr-length")
        if isinstance(rx, str):
            try:
                if not re.fullmatch(rx, value):
                    yield _err(f"The answer '{value}' does not conform to the expected format '{rx}'",
                               expr, loc, "qr-regex")
            except re.error:
                pass
    if vtype in ("Integer", "Decimal", "Date", "DateTime", "Time"):
        yield from _range(vtype, value, d, expr, loc)
    if vtype == "Decimal":
        places = _ext(d, EXT_DECIMALS)
        text = lexeme(value) if not isinstance(value, str) else value
        if isinstance(places, int) and "." in text and len(text.split(".", 1)[1].split("e")[0]) > places:
            yield _err(f"The value {text} has too many decimal places (limit = {places})", expr, loc, "qr-decimals")
    if vtype == "Quantity" and isinstance(value, dict):
        yield from _quantity(value, d, expr, loc)
    if vtype == "Reference" and isinstance(value, dict):
        types = [e.get("valueCode") for e in d.get("extension") or ()
                 if isinstance(e, dict) and e.get("url") == EXT_REF_RESOURCE]
        ref = value.get("reference")
        m = re.match(r"^(?:.*/)?([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/.*)?$", ref) if isinstance(ref, str) else None
        if types and m and m.group(1) not in types:
            yield _err(f"The resource type '{m.group(1)}' in the reference {ref} is not allowed "
                       f"(allowed: {', '.join(map(str, types))})", expr, loc, "qr-reference-type")
    if vtype == "Attachment" and isinstance(value, dict):
        mimes = [e.get("valueCode") for e in d.get("extension") or () if isinstance(e, dict) and e.get("url") == EXT_MIME]
        if mimes and value.get("contentType") not in mimes:
            yield _err(f"The mime type {value.get('contentType')} is not valid for this answer "
                       f"(allowed = {', '.join(map(str, mimes))})", expr, loc, "qr-attachment")
        max_size, size = _ext(d, EXT_MAX_SIZE), value.get("size")
        if max_size is not None and size is not None:
            try:
                if float(lexeme(size)) > float(lexeme(max_size)):
                    yield _err(f"The attachment is too large (allowed = {lexeme(max_size)}, found = {lexeme(size)})",
                               expr, loc, "qr-attachment")
            except (TypeError, ValueError):
                pass


def _range(vtype: str, value, d: dict, expr: str, loc: tuple) -> Iterator[Issue]:
    for url, below in ((EXT_MIN_VALUE, True), (EXT_MAX_VALUE, False)):
        for e in d.get("extension") or ():
            if not isinstance(e, dict) or e.get("url") != url:
                continue
            bound = e.get(f"value{vtype}")
            if bound is None:
                continue
            try:
                if vtype in ("Integer", "Decimal"):
                    a, b = float(lexeme(value)), float(lexeme(bound))
                else:  # ISO dates and times compare as text at the same precision
                    n = min(len(str(value)), len(str(bound)))
                    a, b = str(value)[:n], str(bound)[:n]
            except (TypeError, ValueError):
                continue
            if (a < b) if below else (a > b):
                word = "less than the allowed minimum" if below else "greater than the allowed maximum"
                yield _err(f"The value {value if isinstance(value, str) else lexeme(value)} is {word} of "
                           f"{bound if isinstance(bound, str) else lexeme(bound)}", expr, loc, "qr-range")


def _quantity(value: dict, d: dict, expr: str, loc: tuple) -> Iterator[Issue]:
    units = [e.get("valueCoding") for e in d.get("extension") or ()
             if isinstance(e, dict) and e.get("url") == EXT_UNIT_OPTION and isinstance(e.get("valueCoding"), dict)]
    if units and not any(u.get("system") == value.get("system") and u.get("code") == value.get("code") for u in units):
        yield _err(f"The unit {value.get('system')}#{value.get('code')} is not one of the allowed units "
                   f"({', '.join(str(u.get('code')) for u in units)})", expr, loc, "qr-unit")
    for url, below in ((EXT_MIN_QUANTITY, True), (EXT_MAX_QUANTITY, False)):
        bound = _ext(d, url)
        if not isinstance(bound, dict) or bound.get("value") is None or value.get("value") is None:
            continue
        a, b = ucum_values(value, bound)
        if a is None:
            yield _err(f"The quantity {lexeme(value['value'])} {value.get('unit') or value.get('code') or ''} cannot be "
                       f"compared to the allowed {'minimum' if below else 'maximum'} of {lexeme(bound['value'])} "
                       f"{bound.get('unit') or bound.get('code') or ''} (no formal, comparable UCUM units)",
                       expr, loc, "qr-range")
        elif (a < b) if below else (a > b):
            word = "less than the allowed minimum" if below else "greater than the allowed maximum"
            yield _err(f"The quantity {lexeme(value['value'])} {value.get('code')} is {word} of "
                       f"{lexeme(bound['value'])} {bound.get('code')}", expr, loc, "qr-range")
