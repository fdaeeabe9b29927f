"""R5 patient data in the R4 shape: element names per hl7.fhir.r5.core#5.0.0 and hl7.fhir.r4b.core#4.3.0."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from fhirpkg.logic.r4data import CONVERTED, convert_bundle, to_r4_bundle

CC = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "2555"}]}


def bundle(*resources):
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate(resources)]}


def one(res):
    return to_r4_bundle(bundle(res))["entry"][0]["resource"]


def test_medication_request_codeable_reference_becomes_medication_x():
    r = one({"resourceType": "MedicationRequest", "id": "m", "status": "active", "intent": "order",
             "medication": {"concept": CC}, "subject": {"reference": "Patient/p"},
             "reason": [{"concept": {"text": "x"}}, {"reference": {"reference": "Condition/c"}}],
             "reported": True})
    assert r["medicationCodeableConcept"] == CC
    assert "medication" not in r
    assert r["reasonCode"] == [{"text": "x"}] and r["reasonReference"] == [{"reference": "Condition/c"}]
    assert r["reportedBoolean"] is True


def test_medication_reference():
    r = one({"resourceType": "MedicationRequest", "id": "m", "status": "active", "intent": "order",
             "medication": {"reference": {"reference": "Medication/x"}}, "subject": {"reference": "Patient/p"}})
    assert r["medicationReference"] == {"reference": "Medication/x"}


def test_medication_administration_occurence_becomes_effective():
    r = one({"resourceType": "MedicationAdministration", "id": "a", "status": "completed",
             "medication": {"concept": CC}, "subject": {"reference": "Patient/p"},
             "occurenceDateTime": "2025-01-02", "encounter": {"reference": "Encounter/e"},
             "performer": [{"actor": {"reference": {"reference": "Practitioner/d"}}}], "isSubPotent": False})
    assert r["effectiveDateTime"] == "2025-01-02"
    assert "occurenceDateTime" not in r
    assert r["medicationCodeableConcept"] == CC
    assert r["context"] == {"reference": "Encounter/e"}
    assert r["performer"] == [{"actor": {"reference": "Practitioner/d"}}]
    assert "isSubPotent" not in r


def test_medication_administration_period_and_timing():
    r = one({"resourceType": "MedicationAdministration", "id": "a", "status": "completed",
             "medication": {"concept": CC}, "subject": {"reference": "Patient/p"},
             "occurencePeriod": {"start": "2025-01-02"}})
    assert r["effectivePeriod"] == {"start": "2025-01-02"}
    out = convert_bundle(bundle({"resourceType": "MedicationAdministration", "id": "b", "status": "completed",
                                 "medication": {"concept": CC}, "subject": {"reference": "Patient/p"},
                                 "occurenceTiming": {"event": ["2025-01-02"]}}))
    res = out.bundle["entry"][0]["resource"]
    assert not any(k.startswith(("effective", "occurence")) for k in res)
    assert any(loss.path == "MedicationAdministration.occurence[x]" for loss in out.losses)


def test_procedure_occurrence_becomes_performed():
    r = one({"resourceType": "Procedure", "id": "x", "status": "completed", "subject": {"reference": "Patient/p"},
             "code": {"text": "biopsy"}, "occurrenceDateTime": "2025-03-01", "recorded": "2025-03-02",
             "reason": [{"concept": {"text": "r"}}], "used": [{"reference": {"reference": "Device/d"}}],
             "performer": [{"actor": {"reference": "Practitioner/d"}, "period": {"start": "2025-03-01"}}]})
    assert r["performedDateTime"] == "2025-03-01"
    assert r["reasonCode"] == [{"text": "r"}]
    assert r["usedReference"] == [{"reference": "Device/d"}]
    assert r["performer"] == [{"actor": {"reference": "Practitioner/d"}}]
    assert "recorded" not in r and "occurrenceDateTime" not in r


def test_condition_participant_and_evidence():
    author = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                          "code": "author"}]}
    r = one({"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p"},
             "code": {"text": "NEPC"}, "participant": [{"function": author, "actor": {"reference": "Practitioner/d"}}],
             "evidence": [{"concept": {"text": "biopsy"}}, {"reference": {"reference": "DiagnosticReport/r"}}]})
    assert r["recorder"] == {"reference": "Practitioner/d"}
    assert "participant" not in r
    assert r["evidence"] == [{"code": [{"text": "biopsy"}]}, {"detail": [{"reference": "DiagnosticReport/r"}]}]


def test_observation_and_report_r5_only_elements_are_lost_with_reasons():
    out = convert_bundle(bundle(
        {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"},
         "valueReference": {"reference": "MolecularSequence/s"}, "triggeredBy": [{"type": "reflex"}],
         "component": [{"code": {"text": "gene"}, "valueCodeableConcept": {"text": "BRCA2"}}]},
        {"resourceType": "DiagnosticReport", "id": "d", "status": "final", "code": {"text": "x"},
         "note": [{"text": "n"}], "conclusionCode": [{"text": "c"}]}))
    obs, rep = (e["resource"] for e in out.bundle["entry"])
    assert "valueReference" not in obs and "triggeredBy" not in obs
    assert obs["component"][0]["valueCodeableConcept"] == {"text": "BRCA2"}
    assert "note" not in rep and rep["conclusionCode"] == [{"text": "c"}]
    lost = {loss.path for loss in out.losses}
    assert {"Observation.value[x]", "Observation.triggeredBy", "DiagnosticReport.note"} <= lost


def test_other_types_are_left_out_with_a_reason_and_input_is_unchanged():
    src = bundle({"resourceType": "Patient", "id": "p", "meta": {"profile": ["http://x/p"], "tag": [{"code": "t"}]}},
                 {"resourceType": "Encounter", "id": "e", "status": "completed"})
    before = copy.deepcopy(src)
    out = convert_bundle(src)
    assert src == before
    assert [e["resource"]["resourceType"] for e in out.bundle["entry"]] == ["Patient"]
    assert out.bundle["entry"][0]["resource"]["meta"] == {"tag": [{"code": "t"}]}
    assert any(loss.resource == "Encounter/e" for loss in out.losses)


def r4_elements(rt: str) -> set[str]:
    root = Path.home() / ".fhir/packages/hl7.fhir.r4b.core#4.3.0/package"
    path = root / f"StructureDefinition-{rt}.json"
    if not path.is_file():
        pytest.skip("hl7.fhir.r4b.core#4.3.0 is not installed")
    sd = json.loads(path.read_text())
    names = set()
    for e in sd["snapshot"]["element"]:
        parts = e["path"].split(".")
        if len(parts) == 2:
            name = parts[1]
            if name.endswith("[x]"):
                names.update(name[:-3] + t["code"][0].upper() + t["code"][1:] for t in e.get("type", []))
            else:
                names.add(name)
    return names


@pytest.mark.parametrize("rt", CONVERTED)
def test_converted_top_level_names_exist_in_r4(rt):
    """Every top-level name the conversion writes is an element of the R4 (= R4B here) definition."""
    samples = {
        "MedicationRequest": {"medication": {"concept": CC}, "reason": [{"concept": CC}], "reported": True},
        "MedicationAdministration": {"medication": {"concept": CC}, "occurencePeriod": {"start": "2025"},
                                     "encounter": {"reference": "Encounter/e"}},
        "Procedure": {"occurrencePeriod": {"start": "2025"}, "reason": [{"reference": {"reference": "Condition/c"}}]},
    }
    res = {"resourceType": rt, "id": "x", **samples.get(rt, {})}
    out = one(res)
    allowed = r4_elements(rt) | {"resourceType", "id", "meta", "text", "extension", "contained"}
    assert set(out) <= allowed
