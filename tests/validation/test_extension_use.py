"""Extension definitions limited to FHIR versions (fhirpkg/validation/extension_use.py).

Expected texts are the HL7 validator's EXTENSION_FHIR_VERSION_EARLIEST / _LATEST messages; the
version-specific-use extension (startFhirVersion / endFhirVersion) is the FHIR extensions pack's.
"""
from __future__ import annotations

import pytest

URL = "http://example.org/StructureDefinition/ranged"
VSU = "http://hl7.org/fhir/StructureDefinition/version-specific-use"


def _validator(defs, start=None, end=None):
    from fhirpkg import api
    from fhirpkg.validation import Validator
    limits = [{"url": u, "valueCode": v} for u, v in (("startFhirVersion", start), ("endFhirVersion", end)) if v]
    sd = {"resourceType": "StructureDefinition", "url": URL, "name": "Ranged", "status": "draft",
          "fhirVersion": "5.0.0", "kind": "complex-type", "abstract": False, "type": "Extension",
          "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension", "derivation": "constraint",
          "extension": [{"url": VSU, "extension": limits}] if limits else [],
          "context": [{"type": "element", "expression": "Patient"}],
          "differential": {"element": [{"id": "Extension.url", "path": "Extension.url", "fixedUri": URL},
                                       {"id": "Extension.value[x]", "path": "Extension.value[x]",
                                        "type": [{"code": "code"}]}]}}
    d = defs.derive()
    api.add_conformance_resources(d, [sd])
    return Validator(d)


PATIENT = {"resourceType": "Patient", "active": True, "extension": [{"url": URL, "valueCode": "x"}]}


def found(validator):
    return [(i.severity.code, i.expression, i.message) for i in validator.validate_resource(PATIENT)
            if i.rule == "extension-fhir-version"]


def test_extension_limited_to_r4_r4b_used_in_r5_is_an_error(defs):
    assert found(_validator(defs, "4.0", "4.3")) == [
        ("error", "Patient", f"The definition of the extension '{URL}' specifies that the latest version it can be "
                             "used with is R4B (v4.3), but this context of use is version R5 (v5.0.0)")]


def test_extension_from_r6_on_used_in_r5_is_an_error(defs):
    assert found(_validator(defs, "6.0")) == [
        ("error", "Patient", f"The definition of the extension '{URL}' specifies that the earliest version it can be "
                             "used with is R6 (v6.0), but this context of use is version R5 (v5.0.0)")]


@pytest.mark.parametrize("start,end", [("4.0", None), ("4.0", "5.0"), (None, None)])
def test_extension_whose_range_includes_r5_is_fine(defs, start, end):
    assert found(_validator(defs, start, end)) == []


# --- Type_Specific_Checks_DT_URL_Resolve (url-unresolved) ---------------------------------------

@pytest.mark.parametrize("url,expected", [
    ("http://hl7.org/fhir/StructureDefinition/no-such-extension", True),
    ("http://terminology.hl7.org/StructureDefinition/no-such-extension", True),
    ("http://example.org/StructureDefinition/no-such-extension", False),  # not an HL7 URL space
])
def test_unknown_extension_url_in_an_hl7_space_does_not_resolve(validator, url, expected):
    patient = {"resourceType": "Patient", "extension": [{"url": url, "valueString": "x"}]}
    issues = validator.validate_resource(patient)
    found = [(i.severity.code, i.expression, i.message) for i in issues if i.rule == "url-unresolved"]
    assert found == ([("error", "Patient.extension[0].url", f"No definition could be found for URL value '{url}'")]
                     if expected else [])
    assert any(i.rule == "extension-unknown" for i in issues)


def test_known_extension_url_resolves(validator):
    patient = {"resourceType": "Patient", "extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
         "valueAddress": {"city": "Springfield"}}]}
    assert [i for i in validator.validate_resource(patient) if i.rule == "url-unresolved"] == []
