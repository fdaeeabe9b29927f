"""MedicationKnowledge and ClinicalUseDefinition: R5 reorganised both (definitional, indicationGuideline,
clinicalUseIssue); this puts their content back where R4B/R4 keeps it, or lists what has no place.
"""
from __future__ import annotations

from fhirpkg.publish.convert import xver
from fhirpkg.publish.convert.context import EXT, R4, R4B, Context, ext_value, url_as_identifier
from fhirpkg.publish.convert.datatypes import concept_text, one_line_summary, quantity_text, range_text
from fhirpkg.publish.convert.elements import extension_allowed

_ACTIVE_INGREDIENT = {"ACTI": True, "ACTIB": True, "ACTIM": True, "ACTIR": True, "IACT": False}


def medication_knowledge(mk: dict, cx: Context) -> dict:
    """R5 MedicationKnowledge -> R4B/R4: definitional.* back to the top level, indicationGuideline ->
    administrationGuidelines, name -> synonym, identifier -> artifact-identifier."""
    ids = mk.pop("identifier", None)
    if ids:
        mk["extension"] = list(mk.get("extension") or []) + [
            {"url": EXT + "artifact-identifier", "valueIdentifier": i} for i in ids]
    if "name" in mk:
        mk["synonym"] = list(mk.get("synonym") or []) + mk.pop("name")
        if "_name" in mk:
            mk["_synonym"] = mk.pop("_name")
    for name, why in (("author", "R4B manufacturer is the maker of the product, not the author of the knowledge"),
                      ("intendedJurisdiction", "MedicationKnowledge.intendedJurisdiction is new in R5"),
                      ("storageGuideline", "MedicationKnowledge.storageGuideline is new in R5"),
                      ("packaging", "R5 packaging (cost, packagedProduct) does not match R4B packaging "
                                    "(type, quantity)")):
        if name in mk:
            del mk[name]
            cx.lose(f"MedicationKnowledge.{name}", why)
    definitional = mk.pop("definitional", None)
    if isinstance(definitional, dict):
        _definitional(mk, definitional, cx)
    if "indicationGuideline" in mk:
        mk["administrationGuidelines"] = _administration_guidelines(mk.pop("indicationGuideline"), cx)
        if not mk["administrationGuidelines"]:
            del mk["administrationGuidelines"]
    issues = mk.pop("clinicalUseIssue", None)
    if issues:
        _clinical_use_issues(mk, issues, cx)
    for c in mk.get("medicineClassification") or []:
        for k in [k for k in c if k.startswith("source")]:
            value = c.pop(k)
            if cx.target == R4 and k in ("sourceString", "sourceUri"):
                xver.add(c, "MedicationKnowledge.medicineClassification.source[x]", value, k[6:].lower(), cx)
                continue
            cx.lose("MedicationKnowledge.medicineClassification.source[x]",
                    "medicineClassification.source[x] is new in R5")
    for cost in mk.get("cost") or []:
        if "effectiveDate" in cost:
            del cost["effectiveDate"]
            cx.lose("MedicationKnowledge.cost.effectiveDate", "cost.effectiveDate is new in R5")
        if "costMoney" in cost:
            cost["cost"] = cost.pop("costMoney")
        elif "costCodeableConcept" in cost:
            del cost["costCodeableConcept"]
            cx.lose("MedicationKnowledge.cost.cost[x]", f"{cx.version_name} cost is Money only")
    for reg in mk.get("regulatory") or []:
        if "schedule" in reg:
            reg["schedule"] = [{"schedule": s} for s in reg["schedule"]]
    return mk


def _definitional(mk: dict, d: dict, cx: Context) -> None:
    for name in ("doseForm", "intendedRoute", "drugCharacteristic"):
        if name in d:
            mk[name] = d[name]
    if "definition" in d:
        cx.lose("MedicationKnowledge.definitional.definition", "definitional.definition is new in R5")
    for c in mk.get("drugCharacteristic") or []:
        if "valueAttachment" in c:
            del c["valueAttachment"]
            cx.lose("MedicationKnowledge.definitional.drugCharacteristic.value[x]",
                    f"{cx.version_name} drugCharacteristic cannot hold an Attachment")
    ingredients = []
    for ing in d.get("ingredient") or []:
        out = {k: v for k, v in ing.items() if k in ("id", "extension", "modifierExtension")}
        item = ing.get("item") or {}
        if "concept" in item:
            out["itemCodeableConcept"] = item["concept"]
            if "reference" in item:
                cx.lose("MedicationKnowledge.definitional.ingredient.item",
                        "item[x] holds a concept or a reference in R4B; the concept is kept")
        elif "reference" in item:
            out["itemReference"] = item["reference"]
        codes = [c.get("code") for c in ((ing.get("type") or {}).get("coding") or [])]
        active = next((_ACTIVE_INGREDIENT[c] for c in codes if c in _ACTIVE_INGREDIENT), None)
        if active is not None:
            out["isActive"] = active
        elif "type" in ing:
            cx.lose("MedicationKnowledge.definitional.ingredient.type",
                    "ingredient type other than active/inactive has no R4B element (isActive)")
        if "strengthRatio" in ing:
            out["strength"] = ing["strengthRatio"]
        elif any(k.startswith("strength") for k in ing):
            cx.lose("MedicationKnowledge.definitional.ingredient.strength[x]", "R4B strength is a Ratio only")
        if "itemCodeableConcept" in out or "itemReference" in out:
            ingredients.append(out)
    if ingredients:
        mk["ingredient"] = ingredients


def _administration_guidelines(guidelines: list, cx: Context) -> list:
    path = "MedicationKnowledge.indicationGuideline"
    out = []
    for g in guidelines:
        indications = g.get("indication") or []
        concepts = [i["concept"] for i in indications if isinstance(i, dict) and "concept" in i]
        if any(isinstance(i, dict) and "reference" in i for i in indications):
            cx.lose(f"{path}.indication", "R4B administrationGuidelines.indication[x] cannot reference a "
                    "ClinicalUseDefinition")
        if len(concepts) > 1:
            cx.lose(f"{path}.indication", "R4B has one indication per administrationGuidelines; the first is kept")
        for dg in g.get("dosingGuideline") or [{}]:
            entry = {}
            if concepts:
                entry["indicationCodeableConcept"] = concepts[0]
            if dg.get("dosage"):
                entry["dosage"] = dg["dosage"]
            for name in ("treatmentIntent", "administrationTreatment"):
                if name in dg and cx.target == R4:  # cross-version extension on administrationGuidelines
                    xver.add(entry, f"{path}.dosingGuideline.{name}", dg[name], "CodeableConcept", cx)
                elif name in dg:
                    cx.lose(f"{path}.dosingGuideline.{name}", f"dosingGuideline.{name} is new in R5"
                            + (f": '{concept_text(dg[name])}'" if concept_text(dg[name]) else ""))
            chars = [_patient_characteristic(pc, cx) for pc in dg.get("patientCharacteristic") or []]
            if chars:
                entry["patientCharacteristics"] = chars
            if entry:
                out.append(entry)
    return out


def _patient_characteristic(pc: dict, cx: Context) -> dict:
    out = {"characteristicCodeableConcept": pc.get("type")}
    value = next(((k, v) for k, v in pc.items() if k.startswith("value")), None)
    if value is not None:
        k, v = value
        text = concept_text(v) if k == "valueCodeableConcept" else quantity_text(v) if k == "valueQuantity" else \
            range_text(v)
        if text:
            out["value"] = [text]
        cx.lose("MedicationKnowledge.indicationGuideline.dosingGuideline.patientCharacteristic.value[x]",
                f"R4B patientCharacteristics.value is text: {k} carried as '{text}'")
    return out


def _clinical_use_issues(mk: dict, issues: list, cx: Context) -> None:
    """MedicationKnowledge.clinicalUseIssue has no R4B/R4 element: one-line summaries in artifact-relatedArtifact."""
    added = []
    for ref in issues:
        target = cx.batch.reference(ref.get("reference")) if isinstance(ref, dict) else None
        summary = one_line_summary(target) if target else None
        display = summary or (ref.get("display") if isinstance(ref, dict) else None)
        if display:
            added.append({"url": EXT + "artifact-relatedArtifact",
                          "valueRelatedArtifact": {"type": "documentation", "display": display}})
    cx.lose("MedicationKnowledge.clinicalUseIssue",
            f"{cx.version_name} MedicationKnowledge cannot reference ClinicalUseDefinition (contraindication is "
            f"Reference(DetectedIssue)); each issue is summarized as artifact-relatedArtifact display text"
            + ("; the ClinicalUseDefinition resources are exported and name their subjects" if cx.target == R4B
               else "; the ClinicalUseDefinition resources are exported as Basic (cross-version) and name their "
                    "subjects"))
    if added:
        mk["extension"] = list(mk.get("extension") or []) + added


def clinical_use_definition(cud: dict, cx: Context) -> dict:
    """R5 ClinicalUseDefinition -> R4B: otherTherapy.treatment -> therapy; artifact-url kept as an identifier."""
    url = ext_value(cud, "artifact-url")
    if isinstance(url, str) and not extension_allowed(EXT + "artifact-url",
                                                       frozenset({"ClinicalUseDefinition"})):
        url_as_identifier(cud, url)
    for section in ("contraindication", "indication"):
        s = cud.get(section)
        if isinstance(s, dict):
            if "applicability" in s:
                del s["applicability"]
                cx.lose(f"ClinicalUseDefinition.{section}.applicability", f"{section}.applicability is new in R5")
            for t in s.get("otherTherapy") or []:
                if "treatment" in t:
                    t["therapy"] = t.pop("treatment")
    if "library" in cud:
        del cud["library"]
        cx.lose("ClinicalUseDefinition.library", "ClinicalUseDefinition.library is new in R5")
    subjects = []
    for s in cud.get("subject") or []:
        rtype = str(s.get("reference", "")).split("/")[0] if isinstance(s, dict) else ""
        if rtype in ("NutritionProduct", "BiologicallyDerivedProduct"):
            cx.lose("ClinicalUseDefinition.subject", f"R4B subject cannot reference {rtype}")
        else:
            subjects.append(s)
    if "subject" in cud:
        cud["subject"] = subjects
    return cud
