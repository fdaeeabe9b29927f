"""Patient data from FHIR R5 in the FHIR R4 (4.0.1) shape, for logic written against FHIR 4.0.1.

The CQL library is written against FHIR 4.0.1 (the translator ships no 5.0.0 model info) and the
reference engine evaluates R4 only, so R5 patient records are rewritten before they are read.
Only the resource types of the data contract (docs/logic.md) are converted: Patient, Condition,
Procedure, DiagnosticReport, Observation, MedicationRequest and MedicationAdministration, plus
Medication (what ``medicationReference`` points at; the translator joins it).  Element
names were checked against hl7.fhir.r5.core#5.0.0 and hl7.fhir.r4b.core#4.3.0 (whose element paths
for these seven types equal R4's, per hl7.fhir.xver-extensions#0.1.0 ``other/xver-paths-4.0.json``).

Nothing is dropped silently: each element or resource without an R4 counterpart is listed as a
:class:`fhirpkg.publish.convert.context.Loss`.  Pure functions; the input is never changed.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from fhirpkg.publish.convert.context import Loss

#: The resource types this module converts (the data contract's types).
CONVERTED = ("Patient", "Condition", "Procedure", "DiagnosticReport", "Observation", "MedicationRequest",
             "MedicationAdministration", "Medication")

#: Condition.participant.function codes (provenance-participant-type) that map to R4 elements.
_CONDITION_ROLES = {"author": "recorder", "enterer": "recorder", "informant": "asserter", "attester": "asserter"}


@dataclass
class R4Data:
    """The converted Bundle and what could not be carried over."""

    bundle: dict
    losses: list[Loss] = field(default_factory=list)


def to_r4_bundle(bundle: dict) -> dict:
    """An R5 Bundle of patient data as an R4 (4.0.1) Bundle (what cqf-fhir-cr and FHIRHelpers 4.0.1 read)."""
    return convert_bundle(bundle).bundle


def convert_bundle(bundle: dict) -> R4Data:
    """Like :func:`to_r4_bundle`, with the list of losses."""
    out = R4Data({"resourceType": "Bundle"})
    for key in ("id", "meta", "identifier", "type", "timestamp", "total"):
        if key in bundle:
            out.bundle[key] = copy.deepcopy(bundle[key])
    if "issues" in bundle:
        out.losses.append(Loss("Bundle", "Bundle.issues", "R4 Bundle has no issues element"))
    entries = []
    for entry in bundle.get("entry") or []:
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict):
            continue
        converted = convert_resource(res, out.losses)
        if converted is None:
            continue
        e = {"fullUrl": entry["fullUrl"]} if "fullUrl" in entry else {}
        e["resource"] = converted
        entries.append(e)
    out.bundle["entry"] = entries
    return out


def convert_resource(res: dict, losses: list[Loss]) -> dict | None:
    """One resource in the R4 shape, or None (with a loss) for a type this module does not convert."""
    rt = res.get("resourceType")
    key = f"{rt}/{res.get('id')}"
    fn = _CONVERTERS.get(rt)
    if fn is None:
        losses.append(Loss(key, str(rt), f"{rt} is not one of the data contract's types ({', '.join(CONVERTED)}): "
                                          "not converted, left out"))
        return None
    res = copy.deepcopy(res)
    cx = _Cx(key, rt, losses)
    meta = res.get("meta")
    if isinstance(meta, dict) and meta.get("profile"):
        cx.lose("meta.profile", "R5 profiles do not apply to R4 data")
        meta = {k: v for k, v in meta.items() if k != "profile"}
        if meta:
            res["meta"] = meta
        else:
            del res["meta"]
    fn(res, cx)
    return res


@dataclass
class _Cx:
    key: str
    rt: str
    losses: list[Loss]

    def lose(self, element: str, reason: str) -> None:
        self.losses.append(Loss(self.key, f"{self.rt}.{element}", reason))

    def drop(self, obj: dict, *names: str, where: str = "") -> None:
        for n in names:
            if n in obj:
                del obj[n]
                obj.pop("_" + n, None)
                self.lose(f"{where}{n}", "no R4 counterpart")


def _choice(obj: dict, old: str, new: str, cx: _Cx, allowed: tuple[str, ...]) -> None:
    """Rename a choice element (``occurrenceDateTime`` -> ``performedDateTime``); types R4 lacks are lost."""
    for key in [k for k in obj if k.startswith(old) and k[len(old):][:1].isupper()]:
        suffix = key[len(old):]
        value = obj.pop(key)
        ext = obj.pop("_" + key, None)
        if suffix not in allowed:
            cx.lose(f"{old}[x]", f"R4 {new}[x] has no {suffix} type")
            continue
        obj[new + suffix] = value
        if ext is not None:
            obj["_" + new + suffix] = ext


def _split_refs(obj: dict, name: str, code_name: str, ref_name: str) -> None:
    """A list of CodeableReference -> two lists: its concepts and its references."""
    items = obj.pop(name, None)
    if not isinstance(items, list):
        return
    codes = [i["concept"] for i in items if isinstance(i, dict) and "concept" in i]
    refs = [i["reference"] for i in items if isinstance(i, dict) and "reference" in i]
    if codes:
        obj[code_name] = codes
    if refs:
        obj[ref_name] = refs


def _medication(obj: dict, cx: _Cx) -> None:
    """R5 ``medication`` (CodeableReference(Medication)) -> R4 ``medicationCodeableConcept``/``medicationReference``."""
    med = obj.pop("medication", None)
    if not isinstance(med, dict):
        return
    if "concept" in med:
        obj["medicationCodeableConcept"] = med["concept"]
        if "reference" in med:
            cx.lose("medication.reference", "R4 medication[x] holds a concept or a reference; the concept is kept")
    elif "reference" in med:
        obj["medicationReference"] = med["reference"]


def _patient(res: dict, cx: _Cx) -> None:
    """Patient: the same elements in R5 and R4."""


def _condition(res: dict, cx: _Cx) -> None:
    for p in res.pop("participant", None) or []:
        codes = [c.get("code") for c in (p.get("function") or {}).get("coding") or [] if isinstance(c, dict)]
        target = next((_CONDITION_ROLES[c] for c in codes if c in _CONDITION_ROLES), None)
        if target and target not in res and "actor" in p:
            res[target] = p["actor"]
        else:
            cx.lose("participant", "R4 Condition has only recorder (author) and asserter (informant); "
                                   "this participant has no such single role")
    evidence = res.pop("evidence", None)
    if isinstance(evidence, list):
        out = []
        for e in evidence:
            if isinstance(e, dict) and "concept" in e:
                out.append({"code": [e["concept"]]})
            elif isinstance(e, dict) and "reference" in e:
                out.append({"detail": [e["reference"]]})
        if out:
            res["evidence"] = out


def _procedure(res: dict, cx: _Cx) -> None:
    _choice(res, "occurrence", "performed", cx, ("DateTime", "Period", "String", "Age", "Range"))
    _split_refs(res, "reason", "reasonCode", "reasonReference")
    _split_refs(res, "used", "usedCode", "usedReference")
    _split_refs(res, "complication", "complication", "complicationDetail")
    for p in res.get("performer") or []:
        if isinstance(p, dict):
            cx.drop(p, "period", where="performer.")
    cx.drop(res, "recorded", "focus", "supportingInfo")
    for key in [k for k in res if k.startswith("reported") and k[8:9].isupper()]:
        del res[key]
        cx.lose("reported[x]", "no R4 counterpart")


def _diagnostic_report(res: dict, cx: _Cx) -> None:
    study = res.pop("study", None)
    if isinstance(study, list):
        imaging = [s for s in study if isinstance(s, dict) and str(s.get("reference", "")).startswith("ImagingStudy/")]
        if imaging:
            res["imagingStudy"] = imaging
        if len(imaging) < len(study):
            cx.lose("study", "R4 imagingStudy references ImagingStudy only")
    cx.drop(res, "composition", "note", "supportingInfo")


def _observation_value(obj: dict, cx: _Cx, where: str) -> None:
    for t in ("Attachment", "Reference"):
        if f"value{t}" in obj:
            del obj[f"value{t}"]
            cx.lose(f"{where}value[x]", f"R4 value[x] has no {t} type")


def _observation(res: dict, cx: _Cx) -> None:
    _observation_value(res, cx, "")
    for c in res.get("component") or []:
        if isinstance(c, dict):
            _observation_value(c, cx, "component.")
    for r in res.get("referenceRange") or []:
        if isinstance(r, dict):
            cx.drop(r, "normalValue", where="referenceRange.")
    cx.drop(res, "triggeredBy", "bodyStructure")
    for key in [k for k in res if k.startswith("instantiates") and k[12:13].isupper()]:
        del res[key]
        cx.lose("instantiates[x]", "no R4 counterpart")


def _medication_request(res: dict, cx: _Cx) -> None:
    _medication(res, cx)
    _split_refs(res, "reason", "reasonCode", "reasonReference")
    if "reported" in res:
        res["reportedBoolean"] = res.pop("reported")
        if "_reported" in res:
            res["_reportedBoolean"] = res.pop("_reported")
    sources = res.pop("informationSource", None)
    if isinstance(sources, list) and sources:
        if "reportedBoolean" not in res:
            res["reportedReference"] = sources[0]
        if len(sources) > 1 or "reportedBoolean" in res:
            cx.lose("informationSource", "R4 reported[x] holds one boolean or one reference")
    dispense = res.get("dispenseRequest")
    if isinstance(dispense, dict):
        if "dispenser" in dispense:
            dispense["performer"] = dispense.pop("dispenser")
        cx.drop(dispense, "dispenserInstruction", "doseAdministrationAid", where="dispenseRequest.")
    cx.drop(res, "device", "effectiveDosePeriod", "renderedDosageInstruction", "statusChanged")


def _medication_administration(res: dict, cx: _Cx) -> None:
    _medication(res, cx)
    _choice(res, "occurence", "effective", cx, ("DateTime", "Period"))  # R5 spells it "occurence"
    if "encounter" in res:
        res["context"] = res.pop("encounter")
    _split_refs(res, "reason", "reasonCode", "reasonReference")
    device = res.pop("device", None)
    if isinstance(device, list):
        refs = [d["reference"] for d in device if isinstance(d, dict) and "reference" in d]
        if refs:
            res["device"] = refs
        if len(refs) < len(device):
            cx.lose("device", "R4 device is a Reference; coded devices are left out")
    for p in res.get("performer") or []:
        actor = p.get("actor") if isinstance(p, dict) else None
        if isinstance(actor, dict) and ("concept" in actor or "reference" in actor):
            if "reference" in actor:
                p["actor"] = actor["reference"]
            else:
                del p["actor"]
                cx.lose("performer.actor", "R4 performer.actor is a Reference; a coded actor is left out")
    cx.drop(res, "basedOn", "isSubPotent", "subPotentReason", "recorded")


def _medication_resource(res: dict, cx: _Cx) -> None:
    if "marketingAuthorizationHolder" in res:
        res["manufacturer"] = res.pop("marketingAuthorizationHolder")
    if "doseForm" in res:
        res["form"] = res.pop("doseForm")
    for ing in res.get("ingredient") or []:
        if not isinstance(ing, dict):
            continue
        item = ing.pop("item", None)
        if isinstance(item, dict) and "concept" in item:
            ing["itemCodeableConcept"] = item["concept"]
        elif isinstance(item, dict) and "reference" in item:
            ing["itemReference"] = item["reference"]
        if "strengthRatio" in ing:
            ing["strength"] = ing.pop("strengthRatio")
        for key in [k for k in ing if k.startswith("strength") and k != "strength"]:
            del ing[key]
            cx.lose("ingredient.strength[x]", "R4 strength is a Ratio")
    cx.drop(res, "totalVolume", "definition")


_CONVERTERS = {
    "Medication": _medication_resource,
    "Patient": _patient,
    "Condition": _condition,
    "Procedure": _procedure,
    "DiagnosticReport": _diagnostic_report,
    "Observation": _observation,
    "MedicationRequest": _medication_request,
    "MedicationAdministration": _medication_administration,
}
