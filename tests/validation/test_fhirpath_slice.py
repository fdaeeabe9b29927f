"""slice(structure, name) in profile invariants: the items matching a named slice (the HL7
validator's FHIRPath extension; %profile is the URL of the profile defining the invariant)."""
from __future__ import annotations

from fhirpkg.validation import Options, Validator

PROFILE = "http://example.org/StructureDefinition/slice-phone"
SD = {
    "resourceType": "StructureDefinition", "url": PROFILE, "name": "SlicePhone", "status": "draft",
    "kind": "resource", "abstract": False, "type": "Patient", "derivation": "constraint",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
    "differential": {"element": [
        {"id": "Patient.telecom", "path": "Patient.telecom",
         "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"},
         "constraint": [{"key": "spt-1", "severity": "error", "human": "Phone numbers must have a use",
                         "expression": "slice(%profile, 'phone').all(use.exists())"}]},
        {"id": "Patient.telecom:phone", "path": "Patient.telecom", "sliceName": "phone"},
        {"id": "Patient.telecom:phone.system", "path": "Patient.telecom.system", "fixedCode": "phone"},
        {"id": "Patient.telecom:email", "path": "Patient.telecom", "sliceName": "email"},
        {"id": "Patient.telecom:email.system", "path": "Patient.telecom.system", "fixedCode": "email"}]},
}


def test_slice_selects_the_items_of_the_named_slice(defs):
    from fhirpkg import api

    d = defs.derive()
    api.add_conformance_resources(d, [SD])
    validator = Validator(d, Options(profiles=(PROFILE,)))
    patient = {"resourceType": "Patient", "telecom": [
        {"system": "phone", "value": "1", "use": "home"},
        {"system": "email", "value": "a@b.c"},  # not a phone: the invariant does not ask for a use
        {"system": "phone", "value": "2"}]}
    found = [(i.severity.code, i.expression, i.message) for i in validator.validate_resource(patient, "Patient")
             if i.rule == "spt-1"]
    assert found == [("error", "Patient.telecom[2]", "Constraint failed: spt-1: 'Phone numbers must have a use' "
                      f"(defined in {PROFILE})")]
