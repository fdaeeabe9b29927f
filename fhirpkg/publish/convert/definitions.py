"""PlanDefinition and ActivityDefinition: actions, participants, subjects and kinds in the R4B/R4 shape."""
from __future__ import annotations

import re

from fhirpkg.publish.convert import xver
from fhirpkg.publish.convert.context import R4, R4B, Context

# ------------------------------------------------------------------------- per-type mappings
def _id_ok(value) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", value) is not None


#: R5 action-participant-type -> R4B (patient | practitioner | related-person | device).
_PARTICIPANT_TYPES = {"patient": "patient", "practitioner": "practitioner", "relatedperson": "related-person",
                      "device": "device"}


def _participants(parts: list, path: str, cx: Context) -> list:
    out = []
    for p in parts or []:
        p = dict(p)
        for name in ("actorId", "typeCanonical", "typeReference", "function"):
            if name in p:
                del p[name]
                cx.lose(f"{path}.participant.{name}", f"participant.{name} is new in R5")
        ptype = p.get("type")
        if ptype not in _PARTICIPANT_TYPES:
            cx.lose(f"{path}.participant.type", f"participant type '{ptype}' has no {cx.version_name} code "
                    f"(patient | practitioner | related-person | device) and the type is required there; "
                    f"participant dropped")
            continue
        p["type"] = _PARTICIPANT_TYPES[ptype]
        out.append(p)
    return out


def plan_definition(pd: dict, cx: Context) -> dict:
    for name in ("actor", "asNeededBoolean", "asNeededCodeableConcept"):
        if name in pd:
            del pd[name]
            cx.lose(f"PlanDefinition.{'asNeeded[x]' if name.startswith('asNeeded') else name}",
                    f"PlanDefinition.{name} is new in R5")
    _subject_canonical(pd, "PlanDefinition", cx)
    for goal in pd.get("goal") or []:
        for target in goal.get("target") or []:
            for k in [k for k in target if k.startswith("detail")]:
                if k not in ("detailQuantity", "detailRange", "detailCodeableConcept"):
                    del target[k]
                    cx.lose("PlanDefinition.goal.target.detail[x]",
                            f"{k} is new in R5 ({cx.version_name} allows Quantity, Range, CodeableConcept)")
    if "action" in pd:
        pd["action"] = [_pd_action(a, "PlanDefinition.action", cx) for a in pd["action"]]
    return pd


def _pd_action(a: dict, path: str, cx: Context) -> dict:
    a = dict(a)
    link = a.pop("linkId", None)
    if link is not None:
        if "id" not in a and _id_ok(link):
            a["id"] = link  # R4B relatedAction.actionId points at the action's element id
        elif a.get("id") != link:
            cx.lose(f"{path}.linkId", f"action.linkId is new in R5 ('{link}' differs from the action id)")
    if isinstance(a.get("code"), dict):
        a["code"] = [a["code"]]  # 0..1 in R5, 0..* in R4B
    for name in ("input", "output"):
        if name in a:
            reqs = []
            for item in a.pop(name):
                if not isinstance(item, dict):
                    continue
                extras = {k: item[k] for k in ("title", "relatedData") if k in item}
                if extras and cx.target == R4 and isinstance(item.get("requirement"), dict):
                    # the cross-version extension's context is the R4 input/output DataRequirement
                    item["requirement"] = dict(item["requirement"])
                    xver.add(item["requirement"], f"PlanDefinition.action.{name}", extras,
                             f"@PlanDefinition.action.{name}", cx)
                else:
                    for extra in extras:
                        cx.lose(f"{path}.{name}.{extra}", f"action.{name}.{extra} is new in R5 "
                                f"({cx.version_name} {name} is a plain DataRequirement)")
                if "requirement" in item:
                    reqs.append(item["requirement"])
                else:
                    cx.lose(f"{path}.{name}", f"action.{name} without a requirement has no {cx.version_name} form")
            if reqs:
                a[name] = reqs
    if "relatedAction" in a:
        rel = []
        for r in a["relatedAction"]:
            r = dict(r)
            if "targetId" in r:
                r["actionId"] = r.pop("targetId")
            if "endRelationship" in r:
                del r["endRelationship"]
                cx.lose(f"{path}.relatedAction.endRelationship", "relatedAction.endRelationship is new in R5")
            rel.append(r)
        a["relatedAction"] = rel
    if "location" in a:
        del a["location"]
        cx.lose(f"{path}.location", "action.location is new in R5")
    if "participant" in a:
        a["participant"] = _participants(a["participant"], path, cx)
        if not a["participant"]:
            del a["participant"]
    _subject_canonical(a, path, cx)
    if "action" in a:
        a["action"] = [_pd_action(x, path + ".action", cx) for x in a["action"]]
    return a


def _subject_canonical(obj: dict, path: str, cx: Context) -> None:
    if cx.target == R4 and "subjectCanonical" in obj:
        del obj["subjectCanonical"]
        cx.lose(f"{path}.subject[x]", "R4 subject[x] has no canonical choice (R4B added it)")


#: R5 request-resource-types that R4B lacks: the R4B name where one exists.
_KIND_R4B = {"RequestOrchestration": "RequestGroup"}


def activity_definition(ad: dict, cx: Context) -> dict:
    for name in ("asNeededBoolean", "asNeededCodeableConcept"):
        if name in ad:
            del ad[name]
            cx.lose("ActivityDefinition.asNeeded[x]", "ActivityDefinition.asNeeded[x] is new in R5")
    kind = ad.get("kind")
    if kind in _KIND_R4B:
        ad["kind"] = _KIND_R4B[kind]
    elif kind in ("CoverageEligibilityRequest", "Transport"):
        del ad["kind"]
        cx.lose("ActivityDefinition.kind", f"kind '{kind}' is not a {cx.version_name} request resource type")
    loc = ad.get("location")
    if isinstance(loc, dict):
        if "concept" in loc:
            cx.lose("ActivityDefinition.location.concept", f"{cx.version_name} location is a Reference only")
        if "reference" in loc:
            ad["location"] = loc["reference"]
        else:
            del ad["location"]
    if "participant" in ad:
        ad["participant"] = _participants(ad["participant"], "ActivityDefinition", cx)
        if not ad["participant"]:
            del ad["participant"]
    for name in ("specimenRequirement", "observationRequirement", "observationResultRequirement"):
        if name in ad:  # canonical in R5, Reference in R4B: an absolute reference to the same URL
            ad[name] = [{"reference": c} if isinstance(c, str) else c for c in ad[name]]
    product = ad.get("productReference")
    if isinstance(product, dict):
        rtype = str(product.get("reference", "")).split("/")[0]
        allowed = {"Medication", "Substance"} | ({"Ingredient"} if cx.target == R4B else set())
        if rtype == "SubstanceDefinition" or (cx.target == R4 and rtype == "Ingredient"):
            del ad["productReference"]
            cx.lose("ActivityDefinition.product[x]", f"product may reference {', '.join(sorted(allowed))} "
                    f"in {cx.version_name}, not {rtype}")
    _subject_canonical(ad, "ActivityDefinition", cx)
    return ad
