"""Data types that changed between R5 and R4B/R4 (Coding systems, RelatedArtifact, Dosage, Timing,
Quantity, Attachment, DataRequirement, TriggerDefinition, Expression), converted wherever they
occur, and the one-line text of concepts, quantities and resources that other mappings put where a
structure has no place.
"""
from __future__ import annotations

from typing import Callable

from fhirpkg.publish.citation import citation_url, format_citation
from fhirpkg.publish.convert.context import BASIC_TYPES, EXT, R4, Context, ext_value, resource_key
from fhirpkg.publish.convert.elements import ELEMENTS, extension_allowed

# --------------------------------------------------------------------------- data type fixes
#: Code systems R5 publishes under http://hl7.org/fhir/ whose R4B home is terminology.hl7.org
#: (same codes; found by comparing the two core packages).
_MOVED_SYSTEMS = frozenset(
    "CodeSystem/medication-admin-status CodeSystem/medicationdispense-status "
    "CodeSystem/medicationdispense-status-reason CodeSystem/medicationknowledge-status action-code "
    "action-reason-code artifact-contribution-instance-type artifact-contribution-type certainty-rating "
    "certainty-type citation-artifact-classifier citation-classification-type citation-status-type "
    "citation-summary-style cited-artifact-abstract-type cited-artifact-classification-type "
    "cited-artifact-part-type cited-artifact-status-type cited-medium contributor-role contributor-summary-source "
    "contributor-summary-style contributor-summary-type evidence-classifier-code evidence-report-section "
    "evidence-report-type focus-characteristic-code measure-group-example measure-stratifier-example "
    "measure-supplemental-data-example measurereport-stratifier-value-example message-transport published-in-type "
    "research-study-objective-type research-study-phase research-study-prim-purp-type "
    "research-study-reason-stopped restful-security-service statistic-model-code title-type".split())

#: R5 artifact-url-classifier -> R4B article-url-type (http://terminology.hl7.org/CodeSystem/article-url-type).
URL_CLASSIFIER = {
    "abstract": "abstract", "full-text": "full-text", "supplement": "supplement", "webpage": "webpage",
    "file-directory": "supplementary-file-directory", "compressed-file": "compressed-file",
    "doi-based": "doi-based", "pdf": "pdf", "json": "json", "xml": "xml", "not-specified": "not-specified",
}


def coding(c: dict, path: str, cx: Context) -> dict:
    system = c.get("system")
    if isinstance(system, str) and system.startswith("http://hl7.org/fhir/"):
        tail = system[len("http://hl7.org/fhir/"):]
        if tail in _MOVED_SYSTEMS:
            c = dict(c, system="http://terminology.hl7.org/CodeSystem/" + tail.rsplit("/", 1)[-1])
    return c


_R4B_RELATED_ARTIFACT_TYPES = frozenset(
    "documentation justification citation predecessor successor derived-from depends-on composed-of".split())


def _related_artifact(ra: dict, path: str, cx: Context) -> dict | None:
    """R5 RelatedArtifact -> R4B/R4: classifier, resourceReference, publicationStatus/Date have no place."""
    ra = dict(ra)
    rtype = ra.get("type")
    if rtype not in _R4B_RELATED_ARTIFACT_TYPES:
        cx.lose(f"{path}", f"relatedArtifact type '{rtype}' does not exist in {cx.version_name} "
                f"(related-artifact-type has {', '.join(sorted(_R4B_RELATED_ARTIFACT_TYPES))}); entry dropped"
                + (f": {ra.get('display')}" if ra.get("display") else ""))
        return None
    for name in ("classifier", "publicationStatus", "publicationDate"):
        if name in ra:
            del ra[name]
            cx.lose(f"{path}.{name}", f"RelatedArtifact.{name} is new in R5")
    target = cx.batch.canonical(ra.get("resource"))
    if target is not None and not cx.batch.kept(target):
        return _fold_dropped(ra, target, path, cx)
    if target is not None and _canonical_in_target(target, cx) is None:
        cx.lose(f"{path}.resource", f"{resource_key(target)} has no canonical URL in {cx.version_name}; the canonical "
                "is kept but does not resolve there")
    ref = ra.pop("resourceReference", None)
    if isinstance(ref, dict):
        ra = _reference_to_canonical(ra, ref, path, cx)
        if ra is None:
            return None
    document = ra.get("document")
    if isinstance(document, dict) and isinstance(document.get("url"), str) and "url" not in ra:
        ra["url"] = document["url"]
        if set(document) <= {"url"}:
            del ra["document"]
    return ra


def _reference_to_canonical(ra: dict, ref: dict, path: str, cx: Context) -> dict | None:
    """RelatedArtifact.resourceReference (R5) as a canonical, when the target has one in the export."""
    target = cx.batch.reference(ref.get("reference"))
    if target is not None and not cx.batch.kept(target):
        return _fold_dropped(ra, target, path, cx)
    url = None
    if target is not None and "resource" not in ra:
        url = _canonical_in_target(target, cx)
        if url:
            version = target.get("version") or ext_value(target, "artifact-version")
            ra["resource"] = f"{url}|{version}" if version and ra.get("type") == "composed-of" else url
    if url is None and "resource" not in ra:
        where = ref.get("reference") or ref.get("display") or "a resource"
        if ra.get("type") in ("composed-of", "depends-on"):
            cx.lose(f"{path}.resourceReference", f"{cx.version_name} RelatedArtifact has no Reference and "
                    f"{where} has no canonical URL there; entry dropped")
            return None
        cx.lose(f"{path}.resourceReference", f"{cx.version_name} RelatedArtifact has no Reference and "
                f"{where} has no canonical URL there; kept as display text")
        ra.setdefault("display", ref.get("display") or where)
    return ra


def _canonical_in_target(res: dict, cx: Context) -> str | None:
    """The URL a resource keeps in the export: ``url`` on canonical types, artifact-url where R4B allows it."""
    rt = res.get("resourceType")
    if rt in ELEMENTS[cx.target] and "url" in ELEMENTS[cx.target][rt] and isinstance(res.get("url"), str):
        return res["url"]
    url = ext_value(res, "artifact-url")
    if isinstance(url, str) and extension_allowed(EXT + "artifact-url", frozenset({rt})):
        return url
    return None


def _fold_dropped(ra: dict, target: dict, path: str, cx: Context) -> dict | None:
    """A RelatedArtifact pointing at a resource the export drops: citation text, or a listed loss."""
    rt = target.get("resourceType")
    ra.pop("resourceReference", None)
    if ra.get("type") in ("composed-of", "depends-on"):
        cx.lose(f"{path}", f"{ra['type']} {resource_key(target)}: {rt} does not exist in {cx.version_name}"
                + (f" (it is exported as Basic/{target.get('id')}, which has no canonical URL there)"
                   if cx.target == R4 and rt in BASIC_TYPES else "") + "; entry dropped")
        return None
    if rt == "Citation":
        ra.pop("resource", None)
        cx.lose(f"{path}.resource", f"the link to {resource_key(target)} is replaced by its citation text and "
                f"URL: Citation does not exist in {cx.version_name}"
                + (f" (it is Basic/{target.get('id')} there, which has no canonical URL)" if cx.target == R4 else ""))
        text = format_citation(target)
        if text:
            ra["citation"] = text
        url = citation_url(target)
        if url and "url" not in ra:
            ra["url"] = url
        return ra
    ra.pop("resource", None)
    cx.lose(f"{path}.resource", f"{resource_key(target)}: {rt} does not exist in {cx.version_name}; kept as display text")
    ra.setdefault("display", one_line_summary(target) or resource_key(target))
    return ra


def _dosage(d: dict, path: str, cx: Context) -> dict:
    """R5 Dosage.asNeeded + asNeededFor -> asNeeded[x]; maxDosePerPeriod 0..* -> 0..1."""
    d = dict(d)
    as_needed = d.pop("asNeeded", None)
    reasons = d.pop("asNeededFor", None) or []
    if reasons:
        d["asNeededCodeableConcept"] = reasons[0]
        if len(reasons) > 1:
            cx.lose(f"{path}.asNeededFor", f"{cx.version_name} Dosage.asNeeded[x] holds one reason; the first is kept")
    elif as_needed is not None:
        d["asNeededBoolean"] = as_needed
    return d


_R5_ONLY_EVENT_TIMING = frozenset({"IMD"})


def _timing(t: dict, path: str, cx: Context) -> dict:
    repeat = t.get("repeat")
    if isinstance(repeat, dict) and any(w in _R5_ONLY_EVENT_TIMING for w in repeat.get("when") or ()):
        when = [w for w in repeat["when"] if w not in _R5_ONLY_EVENT_TIMING]
        cx.lose(f"{path}.repeat.when", "event timing IMD (immediate) is new in R5")
        repeat = dict(repeat, when=when) if when else {k: v for k, v in repeat.items() if k != "when"}
        t = dict(t, repeat=repeat)
    return t


def _quantity(q: dict, path: str, cx: Context) -> dict:
    if q.get("comparator") == "ad":
        cx.lose(f"{path}.comparator", "comparator 'ad' (sufficient to achieve this total quantity) is new in R5")
        q = {k: v for k, v in q.items() if k != "comparator"}
    return q


def _attachment(a: dict, path: str, cx: Context) -> dict:
    a = dict(a)
    for name in ("height", "width", "frames", "duration", "pages"):
        if name in a:
            del a[name]
            cx.lose(f"{path}.{name}", f"Attachment.{name} is new in R5")
    size = a.get("size")
    if isinstance(size, str):
        if size.isdigit() and int(size) < 2**31:
            a["size"] = int(size)  # R5 integer64 is a JSON string; R4B unsignedInt is a number
        else:
            del a["size"]
            cx.lose(f"{path}.size", f"size {size} does not fit {cx.version_name} unsignedInt")
    return a


def _data_requirement(dr: dict, path: str, cx: Context) -> dict:
    if "valueFilter" in dr:
        cx.lose(f"{path}.valueFilter", "DataRequirement.valueFilter is new in R5")
        dr = {k: v for k, v in dr.items() if k != "valueFilter"}
    if dr.get("type") == "RequestOrchestration":
        dr = dict(dr, type="RequestGroup")
    return dr


def _trigger(td: dict, path: str, cx: Context) -> dict:
    for name in ("code", "subscriptionTopic"):
        if name in td:
            cx.lose(f"{path}.{name}", f"TriggerDefinition.{name} is new in R5")
    return {k: v for k, v in td.items() if k not in ("code", "subscriptionTopic")}


def _expression(e: dict, path: str, cx: Context) -> dict:
    if "language" not in e:
        cx.lose(f"{path}.language", f"{cx.version_name} Expression.language is required; R5 gave none")
    return e


DATATYPE_FIXES: dict[str, Callable] = {
    "Coding": coding, "RelatedArtifact": _related_artifact, "Dosage": _dosage, "Timing": _timing,
    "Quantity": _quantity, "Age": _quantity, "Duration": _quantity, "Attachment": _attachment,
    "DataRequirement": _data_requirement, "TriggerDefinition": _trigger, "Expression": _expression,
}


def one_line_summary(res: dict | None) -> str | None:
    """One line saying what a ClinicalUseDefinition (or other resource) states."""
    if not res:
        return None
    rt = res.get("resourceType")
    if rt == "ClinicalUseDefinition":
        kind = str(res.get("type", "")).replace("-", " ").capitalize()
        parts = []
        effect = (res.get("undesirableEffect") or {}).get("symptomConditionEffect") or {}
        parts.append(concept_text(effect.get("concept")) if isinstance(effect, dict) else None)
        parts.append((res.get("warning") or {}).get("description"))
        for section in ("indication", "contraindication"):
            dsp = (res.get(section) or {}).get("diseaseSymptomProcedure") or {}
            parts.append(concept_text(dsp.get("concept")) if isinstance(dsp, dict) else None)
        freq = concept_text((res.get("undesirableEffect") or {}).get("frequencyOfOccurrence"))
        body = "; ".join(p for p in parts if p)
        if freq:
            body += f" (frequency: {freq})"
        return f"{kind}: {body}" if body else kind or None
    return res.get("title") or ext_value(res, "artifact-title") or res.get("name")


def concept_text(cc) -> str | None:
    if not isinstance(cc, dict):
        return None
    if cc.get("text"):
        return cc["text"]
    for c in cc.get("coding") or []:
        if c.get("display") or c.get("code"):
            return c.get("display") or c.get("code")
    return None


def quantity_text(q) -> str:
    if not isinstance(q, dict):
        return ""
    return " ".join(str(x) for x in (q.get("comparator"), q.get("value"), q.get("unit") or q.get("code"))
                    if x is not None)


def range_text(r) -> str:
    if not isinstance(r, dict):
        return ""
    return f"{quantity_text(r.get('low')) or '?'} to {quantity_text(r.get('high')) or '?'}"
