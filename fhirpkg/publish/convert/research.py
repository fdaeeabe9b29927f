"""ResearchStudy and Citation: the evidence types, whose R5 shapes differ most from R4B/R4
(study state, parties and arms; publication forms, web locations, contributors).
"""
from __future__ import annotations

import re

from fhirpkg.publish.convert import xver
from fhirpkg.publish.convert.context import R4, Context, url_as_identifier
from fhirpkg.publish.convert.datatypes import URL_CLASSIFIER

#: R5 ResearchStudy.progressStatus.state (research-study-status) -> R4B ResearchStudy.status.
_STUDY_STATUS = {
    "active": "active", "administratively-completed": "administratively-completed", "approved": "approved",
    "closed-to-accrual": "closed-to-accrual",
    "closed-to-accrual-and-intervention": "closed-to-accrual-and-intervention", "completed": "completed",
    "disapproved": "disapproved", "in-review": "in-review",
    "temporarily-closed-to-accrual": "temporarily-closed-to-accrual",
    "temporarily-closed-to-accrual-and-intervention": "temporarily-closed-to-accrual-and-intervention",
    "withdrawn": "withdrawn", "recruiting": "active", "enrolling-by-invitation": "active",
    "not-yet-recruiting": "approved", "active-but-not-recruiting": "closed-to-accrual",
    "terminated": "administratively-completed",
}
#: R5 research-study-party-role codes that name R4B's sponsor / principalInvestigator.
_SPONSOR_ROLES = {"sponsor", "lead-sponsor", "sponsor-investigator"}
_PI_ROLES = {"primary-investigator", "sponsor-investigator"}


def research_study(rs: dict, cx: Context) -> dict:
    """R5 ResearchStudy -> R4B/R4: study state from progressStatus, associatedParty -> sponsor/PI, etc."""
    p = "ResearchStudy"
    if isinstance(rs.get("url"), str):
        url_as_identifier(rs, rs["url"])
    for name, typ in (("url", "uri"), ("version", "string"), ("name", "string"), ("label", "@ResearchStudy.label"),
                      ("date", "dateTime")):
        if name not in rs:
            continue
        value = rs.pop(name)
        if "_" + name in rs:
            rs.pop("_" + name)
            cx.lose(f"{p}.{name}", f"extensions on ResearchStudy.{name} have no place in {cx.version_name}")
        if cx.target == R4:  # R4 ResearchStudy is not a canonical resource: cross-version extensions
            xver.add(rs, f"{p}.{name}", value, typ, cx)
            continue
        cx.lose(f"{p}.{name}", f"ResearchStudy.{name} is new in R5 ({cx.version_name} ResearchStudy is not a "
                "canonical resource and no extension carries it there)"
                + ("; the URL is kept as an identifier (urn:ietf:rfc:3986), but canonical references to it "
                   "do not resolve" if name == "url" else ""))
    pub_status = rs.pop("status", None)
    pub_status_ext = rs.pop("_status", None)
    states = rs.pop("progressStatus", None) or []
    state = study_state(states)
    rs["status"] = state  # studies without a known state are not exported (see _convert)
    if pub_status_ext is not None:
        cx.lose(f"{p}.status", f"extensions on the publication status have no place in {cx.version_name}")
    if pub_status is not None:
        cx.lose(f"{p}.status", f"publication status '{pub_status}' has no {cx.version_name} element "
                "(there status is the study's state)"
                + ("; R5 status is a modifier element, so its cross-version extension is a modifier extension, "
                   "which would make R4 readers that do not know it reject the study" if cx.target == R4 else ""))
    if states and cx.target == R4:
        xver.add(rs, f"{p}.progressStatus", states, "@ResearchStudy.progressStatus", cx)
    elif states and state and len(states) > 1:
        cx.lose(f"{p}.progressStatus", "only the current state is kept; the progress history has no R4B element")
    summary = rs.pop("descriptionSummary", None)
    if summary:
        desc = rs.get("description") or ""
        if summary.strip() not in desc:
            rs["description"] = f"{summary}\n\n{desc}" if desc else summary
    focus = []
    for f in rs.get("focus") or []:
        if "concept" in f:
            focus.append(f["concept"])
        if "reference" in f:
            cx.lose(f"{p}.focus", f"{cx.version_name} focus is a CodeableConcept; the reference "
                    f"{f['reference'].get('reference') or f['reference'].get('display')} is dropped")
    if "focus" in rs:
        rs["focus"] = focus
        if not focus:
            del rs["focus"]
    if "region" in rs:
        rs["location"] = rs.pop("region")
    for name in ("classifier", "studyDesign"):
        if name in rs:
            rs["category"] = list(rs.get("category") or []) + rs.pop(name)
    if "whyStopped" in rs:
        rs["reasonStopped"] = rs.pop("whyStopped")
    _associated_parties(rs, rs.pop("associatedParty", None) or [], cx)
    recruitment = rs.pop("recruitment", None)
    if isinstance(recruitment, dict):
        elig = recruitment.get("eligibility")
        if isinstance(elig, dict) and str(elig.get("reference", "")).startswith("Group/"):
            rs["enrollment"] = [elig]
        elif elig:
            cx.lose(f"{p}.recruitment.eligibility", "R4B enrollment references a Group only")
        for name in ("targetNumber", "actualNumber", "actualGroup"):
            if name in recruitment:
                cx.lose(f"{p}.recruitment.{name}", f"recruitment.{name} is new in R5")
    arms = []
    for g in rs.pop("comparisonGroup", None) or []:
        arm = {k: g[k] for k in ("id", "extension", "modifierExtension", "name", "type", "description") if k in g}
        for name in ("linkId", "intendedExposure", "observedGroup"):
            if name in g:
                cx.lose(f"{p}.comparisonGroup.{name}", f"comparisonGroup.{name} is new in R5")
        if "name" in arm:
            arms.append(arm)
    if arms:
        rs["arm"] = arms
    for o in rs.get("objective") or []:
        if "description" in o:
            del o["description"]
            cx.lose(f"{p}.objective.description", "objective.description is new in R5")
    sites = []
    for s in rs.get("site") or []:
        rtype = (s.get("type") or str(s.get("reference", "")).split("/")[0]) if isinstance(s, dict) else ""
        if rtype in ("ResearchStudy", "Organization"):
            cx.lose(f"{p}.site", f"{cx.version_name} site references a Location only, not {rtype}")
        else:
            sites.append(s)
    if "site" in rs:
        rs["site"] = sites
        if not sites:
            del rs["site"]
    for name in ("outcomeMeasure", "result"):
        if name in rs:
            del rs[name]
            cx.lose(f"{p}.{name}", f"ResearchStudy.{name} is new in R5")
    return rs


def study_state(states: list) -> str | None:
    """The R4B status from R5 progressStatus: the last actual state that maps."""
    for s in reversed([s for s in states if isinstance(s, dict) and s.get("actual", True) is not False]):
        for c in (s.get("state") or {}).get("coding") or []:
            if c.get("code") in _STUDY_STATUS:
                return _STUDY_STATUS[c["code"]]
    return None


def _associated_parties(rs: dict, parties: list, cx: Context) -> None:
    for party in parties:
        roles = {c.get("code") for c in ((party.get("role") or {}).get("coding") or [])}
        ref = party.get("party")
        rtype = str((ref or {}).get("reference", "")).split("/")[0] if isinstance(ref, dict) else ""
        if roles & _SPONSOR_ROLES and rtype in ("Organization", "") and ref and "sponsor" not in rs:
            rs["sponsor"] = ref
        elif roles & _PI_ROLES and rtype in ("Practitioner", "PractitionerRole", "") and ref \
                and "principalInvestigator" not in rs:
            rs["principalInvestigator"] = ref
        else:
            cx.lose("ResearchStudy.associatedParty", f"associated party "
                    f"'{party.get('name') or (ref or {}).get('display') or ', '.join(sorted(r for r in roles if r))}' "
                    f"has no {cx.version_name} element (only one sponsor Organization and one principal "
                    f"investigator are)")


def citation(c: dict, cx: Context) -> dict:
    """R5 Citation -> R4B: publicationForm volume/issue/date into periodicRelease, webLocation.classifier -> type."""
    p = "Citation.citedArtifact"
    if "relatedArtifact" in c:
        del c["relatedArtifact"]
        cx.lose("Citation.relatedArtifact", "Citation.relatedArtifact is new in R5")
    art = c.get("citedArtifact")
    if not isinstance(art, dict):
        return c
    if "relatesTo" in art:
        art["relatesTo"] = [r for r in (_relates_to(x, cx) for x in art["relatesTo"]) if r]
        if not art["relatesTo"]:
            del art["relatesTo"]
    for form in art.get("publicationForm") or []:
        release = {k: form.pop(k) for k in ("citedMedium", "volume", "issue") if k in form}
        date = {}
        if "publicationDateText" in form:
            date["text"] = form.pop("publicationDateText")
            if re.fullmatch(r"\d{4}", date["text"]):
                date["year"] = date["text"]
        if "publicationDateSeason" in form:
            date["season"] = form.pop("publicationDateSeason")
        if date:
            release["dateOfPublication"] = date
        if release:
            form["periodicRelease"] = release
    for loc in art.get("webLocation") or []:
        classifiers = loc.pop("classifier", None) or []
        for cc in classifiers[:1]:
            codes = [x for x in cc.get("coding") or []
                     if x.get("system") == "http://hl7.org/fhir/artifact-url-classifier"]
            mapped = [dict(x, system="http://terminology.hl7.org/CodeSystem/article-url-type",
                           code=URL_CLASSIFIER[x.get("code")]) for x in codes if x.get("code") in URL_CLASSIFIER]
            others = [x for x in cc.get("coding") or [] if x not in codes]
            if mapped or others or cc.get("text"):
                loc["type"] = {k: v for k, v in (("coding", mapped + others), ("text", cc.get("text"))) if v}
            if len(mapped) < len(codes):
                cx.lose(f"{p}.webLocation.classifier", "artifact-url-classifier code without an R4B "
                        "article-url-type counterpart")
        if len(classifiers) > 1:
            cx.lose(f"{p}.webLocation.classifier", "R4B webLocation.type holds one classifier; the first is kept")
    for cl in art.get("classification") or []:
        if "artifactAssessment" in cl:
            del cl["artifactAssessment"]
            cx.lose(f"{p}.classification.artifactAssessment", "classification.artifactAssessment is new in R5")
    contributorship = art.get("contributorship")
    if isinstance(contributorship, dict) and contributorship.get("entry"):
        contributorship["entry"] = [_contributor(e, cx) for e in contributorship["entry"]]
    return c


def _relates_to(r: dict, cx: Context) -> dict | None:
    p = "Citation.citedArtifact.relatesTo"
    rtype = r.get("type")
    if rtype not in _ARTIFACT_RELATIONSHIP_TYPES:
        cx.lose(p, f"relationship '{rtype}' has no R4B artifact-relationship-type code; entry dropped")
        return None
    out = {k: r[k] for k in ("id", "extension", "modifierExtension") if k in r}
    out["relationshipType"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/artifact-relationship-type",
                                           "code": rtype}]}
    if "classifier" in r:
        out["targetClassifier"] = r["classifier"]
    for src, dst in (("resource", "targetUri"), ("resourceReference", "targetReference"),
                     ("document", "targetAttachment")):
        if src in r and not any(k.startswith("target") and k != "targetClassifier" for k in out):
            out[dst] = r[src]
    if "citation" in r and not any(k.startswith("target") and k != "targetClassifier" for k in out):
        out["targetAttachment"] = {"title": r["citation"]}
    for name in ("label", "display", "citation"):
        if name in r:
            cx.lose(f"{p}.{name}", f"relatesTo.{name} is new in R5")
    return out if any(k.startswith("target") and k != "targetClassifier" for k in out) else None


_ARTIFACT_RELATIONSHIP_TYPES = frozenset(
    "replaces amends appends transforms replaced-with amended-with appended-with transformed-with derived-from "
    "transformed-into composed-of part-of supports supported-with depends-on similar-to cites cited-by retracts "
    "retracted-by comments-on comment-in corrects correction-in".split())


def _contributor(e: dict, cx: Context) -> dict:
    p = "Citation.citedArtifact.contributorship.entry"
    e = dict(e)
    who = e.pop("contributor", None)
    if isinstance(who, dict):
        if who.get("display"):
            e["name"] = {"text": who["display"]}
        cx.lose(f"{p}.contributor", "R4B names the contributor inline; the reference is dropped"
                + (" (its display is kept as name.text)" if who.get("display") else ""))
    if "forenameInitials" in e:
        e["initials"] = e.pop("forenameInitials")
    if "rankingOrder" in e:
        e["listOrder"] = e.pop("rankingOrder")
    if "affiliation" in e:
        e["affiliationInfo"] = [{"affiliation": a.get("display")} for a in e.pop("affiliation") if a.get("display")]
        cx.lose(f"{p}.affiliation", "R4B affiliationInfo is text; affiliation references are reduced to their display")
        if not e["affiliationInfo"]:
            del e["affiliationInfo"]
    return e
