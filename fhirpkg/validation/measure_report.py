"""A MeasureReport against its Measure, as the HL7 validator's MeasureValidator checks groups and scores.

Only when the Measure is in hand (contained ``#id``, a resource of the run, or a loaded package) and
has groups.  Reported (errors):

* groups: MEASURE_MR_GRP_NO_CODE(_R5) (several groups: each needs a code or linkId),
  MEASURE_MR_GRP_UNK_CODE / _UNK_LINKID (no such group in the Measure), MEASURE_MR_GRP_DUPL_CODE,
  MEASURE_MR_GRP_MISSING_BY_CODE(_R5) (a Measure group the report lacks, unless it is a data-collection),
  MEASURE_MR_GRP_NO_WRONG_CODE (one group each, with different codes);
* scores of matched groups: MEASURE_MR_SCORE_PROHIBITED_RT (a data-collection report),
  MEASURE_MR_SCORE_PROHIBITED_MS (a cohort measure), MEASURE_MR_SCORE_REQUIRED and
  MEASURE_MR_SCORE_VALUE_REQUIRED (proportion, ratio, continuous-variable), MEASURE_MR_SCORE_UNIT_PROHIBITED
  and MEASURE_MR_SCORE_VALUE_INVALID_01 (a proportion is a unitless number from 0 to 1).

* stratifiers of matched groups: MEASURE_MR_GRP_STRAT_NO_CODE(_R5), _UNK_CODE, _UNK_LINKID, _DUPL_CODE,
  _MISSING_BY_CODE(_R5).

Populations are not compared.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Iterator

from fhirpkg.issues import Issue, Severity
from fhirpkg.fhir.model import Node
from fhirpkg.validation import canonical_lookup


def _measure(mr: dict, defs, resolver) -> dict | None:
    ref = mr.get("measure")
    if isinstance(ref, dict):  # STU3-style Reference
        ref = ref.get("reference")
    if not isinstance(ref, str) or not ref:
        return None
    if ref.startswith("#"):
        return next((c for c in mr.get("contained") or () if isinstance(c, dict) and c.get("id") == ref[1:]
                     and c.get("resourceType") == "Measure"), None)
    return canonical_lookup.find(defs, resolver, ref, "Measure")


def _codings(cc) -> list[tuple]:
    return [(c.get("system"), c.get("code")) for c in (cc or {}).get("coding") or () if isinstance(c, dict)] \
        if isinstance(cc, dict) else []


def _matches(cc, other) -> bool:
    mine = set(_codings(other))
    return any(c in mine for c in _codings(cc))


def _shown(cc) -> str:
    """A CodeableConcept as the HL7 validator writes it in these messages (genCC)."""
    if not isinstance(cc, dict):
        return ""
    codes = [f"{c.get('system')}{'|' + c['version'] if c.get('version') else ''}#{c.get('code')}"
             for c in cc.get("coding") or () if isinstance(c, dict)]
    out = (f"[{', '.join(codes)}]" if len(codes) > 1 else "".join(codes))
    if codes and cc.get("text"):
        out += ": "
    return out + (f"'{cc['text']}'" if cc.get("text") else "")


def check(node: Node, defs, resolver=None) -> Iterator[Issue]:
    mr = node.value
    if not isinstance(mr, dict) or node.location != node.frame.location:
        return
    measure = _measure(mr, defs, resolver)
    groups = [g for g in (measure or {}).get("group") or () if isinstance(g, dict)]
    if not groups:
        return
    r5 = not defs.fhir_version.startswith(("4.", "3.", "1."))
    scoring = next(iter(_codings(measure.get("scoring"))), (None, None))[1]
    report_type = mr.get("type")
    mr_groups = [g for g in mr.get("group") or () if isinstance(g, dict)]

    def err(message: str, expr: str, loc: tuple) -> Issue:
        return Issue(Severity.ERROR, "business-rule", message, "measure-report", expr, location=loc)

    if len(mr_groups) == 1 and len(groups) == 1:
        g, mg = mr_groups[0], groups[0]
        expr, loc = f"{node.expression}.group[0]", node.location + ("group", 0)
        if mg.get("code") and g.get("code") and not _matches(g["code"], mg["code"]):
            yield err(f"The code provided ({_shown(g['code'])}) does not match the code specified in the measure "
                      f"report ({_shown(mg['code'])})", expr, loc)
        yield from _score(g, scoring, report_type, expr, loc, err)
        yield from _stratifiers(g, mg, r5, expr, loc, err)
        return
    used: list[int] = []
    for i, g in enumerate(mr.get("group") or ()):
        if not isinstance(g, dict):
            continue
        expr, loc = f"{node.expression}.group[{i}]", node.location + ("group", i)
        link, code = g.get("linkId"), g.get("code")
        if code is None and link is None:
            yield err("Group should have a code or linkId that matches the group definition in the measure" if r5
                      else "Group should have a code that matches the group definition in the measure", expr, loc)
            continue
        if link is not None:
            k = next((n for n, mg in enumerate(groups) if mg.get("linkId") == link), None)
            if k is None:
                yield err(f"The linkId '{link}' for this group has no match in the measure definition", expr, loc)
                continue
        else:
            k = next((n for n, mg in enumerate(groups) if mg.get("code") and _matches(code, mg["code"])), None)
            if k is None:
                yield err(f"The code '{_shown(code)}' for this group has no match in the measure definition", expr, loc)
                continue
        if k in used:
            yield err("The code for this group is duplicated with another group", expr, loc)
            continue
        used.append(k)
        yield from _score(g, scoring, report_type, expr, loc, err)
        yield from _stratifiers(g, groups[k], r5, expr, loc, err)
    if report_type != "data-collection":
        for k, mg in enumerate(groups):
            if k not in used:
                yield err(f"The MeasureReport does not include a group for the group with linkId "
                          f"'{mg.get('linkId', '')}' and code '{_shown(mg.get('code'))}'" if r5 else
                          f"The MeasureReport does not include a group for the group with code "
                          f"'{_shown(mg.get('code'))}'", node.expression, node.location)


def _stratifiers(g: dict, mg: dict, r5: bool, expr: str, loc: tuple, err) -> Iterator[Issue]:
    """Each stratifier of a report group names one of its Measure group's, and none is left out."""
    defined = [s for s in mg.get("stratifier") or () if isinstance(s, dict)]
    used: list[int] = []
    for i, st in enumerate(g.get("stratifier") or ()):
        if not isinstance(st, dict):
            continue
        sexpr, sloc = f"{expr}.stratifier[{i}]", loc + ("stratifier", i)
        link, code = st.get("linkId"), st.get("code")
        if code is None and link is None:
            yield err("Group should have a code or linkId that matches the group stratifier definition in the measure"
                      if r5 else "Group should have a code that matches the group stratifier definition in the "
                      "measure", sexpr, sloc)
            continue
        codes = code if isinstance(code, list) else [code]  # R4 MeasureReport.group.stratifier.code repeats
        if link is not None:
            k = next((n for n, d in enumerate(defined) if d.get("linkId") == link), None)
            what = f"The linkId '{link}' for this group stratifier has no match in the measure definition"
        else:
            k = next((n for n, d in enumerate(defined) if d.get("code") and any(_matches(c, d["code"]) for c in codes)),
                     None)
            what = "The code for this group stratifier has no match in the measure definition"
        if k is None:
            yield err(what, sexpr, sloc)
        elif k in used:
            yield err("The code for this group stratifier is duplicated with another group", sexpr, sloc)
        else:
            used.append(k)
    for k, d in enumerate(defined):
        if k not in used:
            # the HL7 validator shows the linkId and id only when the group has them
            link = d.get("linkId", "") if mg.get("linkId") else ""
            sid = d.get("id", "") if mg.get("id") else ""
            yield err(f"The MeasureReport does not include a stratifier for the stratifier with linkId '{link}' and "
                      f"code '{_shown(d.get('code'))}' (id = '{sid}')" if r5 else
                      f"The MeasureReport does not include a stratifier for the stratifier with code "
                      f"'{_shown(d.get('code'))}' (id = '{sid}')", expr, loc)


def _score(g: dict, scoring, report_type, expr: str, loc: tuple, err) -> Iterator[Issue]:
    ms = g.get("measureScore")
    sexpr, sloc = expr + ".measureScore", loc + ("measureScore",)
    if report_type == "data-collection":
        if ms is not None:
            yield err("No measureScore when the type of the report is 'data-collection'", sexpr, sloc)
    elif scoring == "cohort":
        if ms is not None:
            yield err("No measureScore when the scoring of the message is 'cohort'", sexpr, sloc)
    elif scoring in ("proportion", "ratio", "continuous-variable"):
        if not isinstance(ms, dict):
            yield err(f"A measureScore is required when the Measure.scoring={scoring}", expr, loc)
            return
        value = ms.get("value")
        if value is None:
            yield err(f"A value is required when the Measure.scoring = {scoring}", sexpr, sloc)
            return
        if scoring == "proportion":
            for unit in ("unit", "system", "code"):
                if unit in ms:
                    yield err("A measureScore for this Measure Scoring (proportion) should not have units",
                              f"{sexpr}.{unit}", sloc + (unit,))
            try:
                if not Decimal(str(value)) >= 0 or not Decimal(str(value)) <= 1:
                    yield err("The value is invalid - it must be between 0 and 1", sexpr + ".value", sloc + ("value",))
            except (InvalidOperation, ValueError):
                pass  # not a number: reported by the structure checks
